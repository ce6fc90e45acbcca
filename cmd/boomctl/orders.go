package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/boomerang-loyalty/boomerang/pkg/money"
	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

func (a *app) ordersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "orders",
		Short: "Submit orders to order-ingest and look them up",
	}
	cmd.AddCommand(a.ordersSubmitCommand(), a.ordersGetCommand(), a.ordersImportCommand())
	return cmd
}

// orderFlags are the flags of `orders submit` that describe one order. The
// amounts stay text until build, which parses them in the order's currency.
type orderFlags struct {
	source        string
	orderID       string
	kind          string
	occurredAt    string
	currency      string
	total         string
	shipping      string
	tax           string
	discountCodes []string
	discount      string
	channel       string
	customerID    string
	email         string
	refundID      string
	refund        string
	items         []string
	test          bool
}

func (f *orderFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.source, "source", "", "shop or platform the order comes from (lower-case subject token)")
	fs.StringVar(&f.orderID, "order-id", "", "the order's id on the source")
	fs.StringVar(&f.kind, "kind", "paid", "event kind: placed, paid, refunded or cancelled")
	fs.StringVar(&f.occurredAt, "occurred-at", "", "when it happened, RFC 3339 (default now)")
	fs.StringVar(&f.currency, "currency", "", "ISO 4217 currency of every amount, e.g. EUR")
	fs.StringVar(&f.total, "total", "", `order total as a decimal in major units, e.g. "120.00" (required for placed and paid)`)
	fs.StringVar(&f.shipping, "shipping", "", "shipping included in the total")
	fs.StringVar(&f.tax, "tax", "", "tax included in the total")
	fs.StringArrayVar(&f.discountCodes, "discount-code", nil, "discount code used (repeatable)")
	fs.StringVar(&f.discount, "discount", "", "amount the discounts saved")
	fs.StringVar(&f.channel, "channel", "", "sales channel within the source (web, app, pos...)")
	fs.StringVar(&f.customerID, "customer-id", "", "the customer's id on the source platform")
	fs.StringVar(&f.email, "email", "", "the customer's e-mail")
	fs.StringVar(&f.refundID, "refund-id", "", "the refund's id (with --kind refunded)")
	fs.StringVar(&f.refund, "refund", "", "amount refunded (with --kind refunded)")
	fs.StringArrayVar(&f.items, "item", nil, `line item "SKU:category:qty:price", price per unit (repeatable; category may be empty)`)
	fs.BoolVar(&f.test, "test", false, "mark the order as a test order (carried, earns nothing)")
}

// parseKind reads --kind; both spellings of cancelled are accepted because
// operators type both.
func parseKind(s string) (ordersv1.OrderEventKind, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "placed":
		return ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED, true
	case "paid":
		return ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, true
	case "refunded":
		return ordersv1.OrderEventKind_ORDER_EVENT_KIND_REFUNDED, true
	case "cancelled", "canceled":
		return ordersv1.OrderEventKind_ORDER_EVENT_KIND_CANCELLED, true
	}
	return ordersv1.OrderEventKind_ORDER_EVENT_KIND_UNSPECIFIED, false
}

// build turns the flags into an Order. It checks only what it needs to
// build the message (syntax, amounts, currency); the business rules (a
// refund only on a refunded event, a customer for paid orders...) are the
// server's, which answers with field violations.
func (f *orderFlags) build(now time.Time) (*ingestv1.Order, error) {
	if strings.TrimSpace(f.source) == "" {
		return nil, errors.New("--source is required (or use --file)")
	}
	if strings.TrimSpace(f.orderID) == "" {
		return nil, errors.New("--order-id is required (or use --file)")
	}
	kind, ok := parseKind(f.kind)
	if !ok {
		return nil, fmt.Errorf("--kind: want placed, paid, refunded or cancelled, got %q", f.kind)
	}
	occurred := now
	if f.occurredAt != "" {
		t, err := time.Parse(time.RFC3339, f.occurredAt)
		if err != nil {
			return nil, fmt.Errorf("--occurred-at: want RFC 3339 such as 2026-03-01T12:00:00Z: %w", err)
		}
		occurred = t
	}
	o := &ingestv1.Order{
		Source:     strings.TrimSpace(f.source),
		OrderId:    strings.TrimSpace(f.orderID),
		Kind:       kind,
		OccurredAt: timestamppb.New(occurred),
		Channel:    f.channel,
		Test:       f.test,
	}
	currency := strings.ToUpper(strings.TrimSpace(f.currency))
	amount := func(flag, text string) (*commonv1.Money, error) {
		if text == "" {
			return nil, nil
		}
		if currency == "" {
			return nil, fmt.Errorf("--%s needs --currency", flag)
		}
		minor, err := money.Parse(text, currency)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		return &commonv1.Money{MinorUnits: minor, Currency: currency}, nil
	}
	var err error
	if o.Total, err = amount("total", f.total); err != nil {
		return nil, err
	}
	if o.Shipping, err = amount("shipping", f.shipping); err != nil {
		return nil, err
	}
	if o.Tax, err = amount("tax", f.tax); err != nil {
		return nil, err
	}
	if len(f.discountCodes) > 0 || f.discount != "" {
		o.Discount = &ingestv1.DiscountInput{Codes: f.discountCodes}
		if o.Discount.Amount, err = amount("discount", f.discount); err != nil {
			return nil, err
		}
	}
	if f.customerID != "" || f.email != "" {
		o.Customer = &ingestv1.CustomerInput{PlatformCustomerId: f.customerID, Email: f.email}
	}
	// A refund needs both its id and amount; one without the other is a
	// typo, not something to send half-built.
	switch {
	case f.refundID != "" && f.refund == "":
		return nil, errors.New("--refund-id needs --refund (the amount)")
	case f.refundID == "" && f.refund != "":
		return nil, errors.New("--refund needs --refund-id")
	case f.refund != "":
		o.Refund = &ingestv1.RefundInput{RefundId: f.refundID}
		if o.Refund.Amount, err = amount("refund", f.refund); err != nil {
			return nil, err
		}
	}
	for _, spec := range f.items {
		item, err := parseItem(spec, currency)
		if err != nil {
			return nil, err
		}
		o.Items = append(o.Items, item)
	}
	return o, nil
}

// parseItem reads "SKU:category:qty:price". It splits from the right so a
// SKU may itself contain colons.
func parseItem(spec, currency string) (*ingestv1.LineItemInput, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 4 {
		return nil, fmt.Errorf("--item %q: want SKU:category:qty:price (category may be empty)", spec)
	}
	n := len(parts)
	sku := strings.Join(parts[:n-3], ":")
	category, qtyText, price := parts[n-3], parts[n-2], parts[n-1]
	if strings.TrimSpace(sku) == "" {
		return nil, fmt.Errorf("--item %q: empty SKU", spec)
	}
	qty, err := strconv.ParseInt(strings.TrimSpace(qtyText), 10, 64)
	if err != nil || qty < 1 {
		return nil, fmt.Errorf("--item %q: quantity %q is not a whole number of at least 1", spec, qtyText)
	}
	if currency == "" {
		return nil, fmt.Errorf("--item %q: needs --currency for its price", spec)
	}
	minor, err := money.Parse(price, currency)
	if err != nil {
		return nil, fmt.Errorf("--item %q: price: %w", spec, err)
	}
	return &ingestv1.LineItemInput{
		Sku:       sku,
		Category:  category,
		Quantity:  qty,
		UnitPrice: &commonv1.Money{MinorUnits: minor, Currency: currency},
	}, nil
}

// readOrders decodes a --file document. Two protobuf JSON (protojson)
// forms are accepted: one boomerang.ingest.v1.Order, or a
// boomerang.ingest.v1.SubmitOrdersRequest {"orders": [...]}. An object with
// an "orders" key is the second; Order has no such field, so the two never
// overlap. This is not the shops' JSON format with decimal amounts: amounts
// here are Money messages in minor units.
func readOrders(r io.Reader) (*ingestv1.SubmitOrdersRequest, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("want a JSON object (an Order or {\"orders\": [...]}): %w", err)
	}
	const hint = `(want the protobuf JSON form: amounts as {"minorUnits": "12000", "currency": "EUR"}, kind as "ORDER_EVENT_KIND_PAID")`
	req := &ingestv1.SubmitOrdersRequest{}
	if _, ok := top["orders"]; ok {
		if err := protojson.Unmarshal(b, req); err != nil {
			return nil, fmt.Errorf("SubmitOrdersRequest: %w %s", err, hint)
		}
		return req, nil
	}
	o := &ingestv1.Order{}
	if err := protojson.Unmarshal(b, o); err != nil {
		return nil, fmt.Errorf("order: %w %s", err, hint)
	}
	req.Orders = []*ingestv1.Order{o}
	return req, nil
}

func openInput(cmd *cobra.Command, name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(cmd.InOrStdin()), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	return f, nil
}

func (a *app) submitRequest(cmd *cobra.Command, f *orderFlags, file string) (*ingestv1.SubmitOrdersRequest, error) {
	if file == "" {
		o, err := f.build(a.now())
		if err != nil {
			return nil, &usageError{err: err}
		}
		return &ingestv1.SubmitOrdersRequest{Orders: []*ingestv1.Order{o}}, nil
	}
	// A file describes its orders completely; mixing in order flags would
	// leave the reader guessing which one won.
	var mixed []string
	cmd.LocalNonPersistentFlags().VisitAll(func(fl *pflag.Flag) {
		if fl.Changed && fl.Name != "file" {
			mixed = append(mixed, "--"+fl.Name)
		}
	})
	if len(mixed) > 0 {
		return nil, usagef("--file cannot be combined with %s", strings.Join(mixed, ", "))
	}
	in, err := openInput(cmd, file)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	req, err := readOrders(in)
	if err != nil {
		return nil, fmt.Errorf("--file %s: %w", file, err)
	}
	return req, nil
}

func (a *app) ordersSubmitCommand() *cobra.Command {
	var f orderFlags
	var file string
	cmd := &cobra.Command{
		Use:   "submit",
		Short: "Submit an order event, from flags or from a JSON file",
		Long: `Submit an order event to order-ingest (IngestService.SubmitOrders) and print one
result per order: outcome, event id, customer id and, for rejections, the reason.

The order comes from flags, with amounts as decimals in major units of --currency,
or from --file (- reads stdin) holding the protobuf JSON form of either one
boomerang.ingest.v1.Order or a boomerang.ingest.v1.SubmitOrdersRequest
{"orders": [...]}; there amounts are Money messages in minor units.

Exits 1 if the call fails or any order is rejected (duplicates are not rejections).`,
		Example: `  boomctl orders submit --source shop-eu --order-id 1001 --currency EUR --total 120.00 \
    --email ada@example.com --item TSHIRT-M:apparel:2:50.00 --shipping 20.00
  boomctl orders submit --source shop-eu --order-id 1001 --kind refunded \
    --currency EUR --refund-id r1 --refund 30.00
  boomctl orders submit --file orders.json`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			req, err := a.submitRequest(cmd, &f, file)
			if err != nil {
				return err
			}
			conn, err := a.dial(cmd)
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := ingestv1.NewIngestServiceClient(conn).SubmitOrders(cmd.Context(), req)
			if err != nil {
				return &callError{method: "SubmitOrders", addr: a.addr, err: err}
			}
			if err := a.printSubmit(req, resp); err != nil {
				return err
			}
			rejected := 0
			for _, r := range resp.GetResults() {
				if r.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED && r.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_DUPLICATE {
					rejected++
				}
			}
			if rejected > 0 {
				return fmt.Errorf("%d of %d orders %w", rejected, len(req.GetOrders()), errRejected)
			}
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", `read the orders from a protobuf JSON file ("-" for stdin) instead of flags`)
	return cmd
}

func (a *app) printSubmit(req *ingestv1.SubmitOrdersRequest, resp *ingestv1.SubmitOrdersResponse) error {
	if a.jsonOutput() {
		return a.printJSON(resp)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tOUTCOME\tEVENT ID\tCUSTOMER ID\tREASON")
	for i, r := range resp.GetResults() {
		id := r.GetOrderId()
		if id == "" && i < len(req.GetOrders()) {
			id = req.GetOrders()[i].GetOrderId()
		}
		reason := r.GetReason()
		if r.GetMessage() != "" {
			reason = strings.TrimPrefix(reason+": "+r.GetMessage(), ": ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, enumName(r.GetOutcome().String(), "ORDER_OUTCOME_"),
			dash(r.GetEventId()), dash(r.GetCustomerId()), reason)
	}
	return tw.Flush()
}

func (a *app) ordersGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get SOURCE ORDER_ID",
		Short: "Show an ingested order: status, amounts and history",
		Args:  cobra.ExactArgs(2),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			conn, err := a.dial(cmd)
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := ingestv1.NewIngestServiceClient(conn).GetOrder(cmd.Context(), &ingestv1.GetOrderRequest{Source: args[0], OrderId: args[1]})
			if err != nil {
				return &callError{method: "GetOrder", addr: a.addr, err: err}
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			return printOrder(a.stdout, resp)
		}),
	}
}

func printOrder(w io.Writer, o *ingestv1.GetOrderResponse) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Order:\t%s/%s\n", o.GetSource(), o.GetOrderId())
	fmt.Fprintf(tw, "Customer:\t%s\n", dash(o.GetCustomerId()))
	fmt.Fprintf(tw, "Status:\t%s\n", enumName(o.GetStatus().String(), "ORDER_STATUS_"))
	fmt.Fprintf(tw, "Total:\t%s\n", withBase(o.GetTotal(), o.GetBaseTotal()))
	fmt.Fprintf(tw, "Refunded:\t%s\n", withBase(o.GetRefunded(), o.GetBaseRefunded()))
	fmt.Fprintf(tw, "First seen:\t%s\n", timestamp(o.GetFirstSeenAt()))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "History:\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tKIND\tOCCURRED AT\tEVENT ID\tDETAIL")
	for _, e := range o.GetHistory() {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", e.GetOrderSequence(), enumName(e.GetKind().String(), "ORDER_EVENT_KIND_"),
			timestamp(e.GetOccurredAt()), e.GetEventId(), eventDetail(e))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// eventDetail is the one thing worth seeing about each kind of event.
func eventDetail(e *ordersv1.OrderEvent) string {
	var parts []string
	if r := e.GetRefund(); r != nil {
		parts = append(parts, fmt.Sprintf("refund %s %s (refunded so far %s)", r.GetRefundId(),
			formatMoney(r.GetAmount().GetOriginal()), formatMoney(r.GetRefundedTotal().GetOriginal())))
	} else if e.GetTotal() != nil {
		parts = append(parts, "total "+withBase(e.GetTotal(), e.GetBaseTotal()))
	}
	if e.GetTest() {
		parts = append(parts, "test")
	}
	return strings.Join(parts, ", ")
}

func withBase(m, base *commonv1.Money) string {
	s := formatMoney(m)
	if base != nil && m != nil && base.GetCurrency() != m.GetCurrency() {
		s += " (base " + formatMoney(base) + ")"
	}
	return s
}

func formatMoney(m *commonv1.Money) string {
	if m == nil {
		return "-"
	}
	return money.Money{Minor: m.GetMinorUnits(), Currency: m.GetCurrency()}.String()
}

func timestamp(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// enumName turns ORDER_STATUS_PARTIALLY_REFUNDED into "partially refunded".
func enumName(name, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, prefix)), "_", " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
