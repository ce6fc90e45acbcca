package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	customersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/customers/v1"
)

func (a *app) customersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "customers",
		Short: "Look at one customer across every service",
	}
	cmd.AddCommand(a.customersShowCommand())
	return cmd
}

func (a *app) customersShowCommand() *cobra.Command {
	var source, platformID string
	var orders int32
	cmd := &cobra.Command{
		Use:   "show [CUSTOMER_ID | E-MAIL]",
		Short: "Show what Boomerang holds on a customer: keys, orders, points, segment, CLV, open cases",
		Long: `Show what Boomerang holds on one customer, in one call (CustomerService.GetCustomer,
scope customers:read): the kinds of identity key that lead to them (never their values), their
most recent orders, the points account and tier, the segment, flags, RFM and CLV, and the open
recovery cases.

Name the customer by their id (cus_…), by an e-mail address (an argument with "@"), or by
their id on a shop (--source and --platform-id). An e-mail or platform id is hashed by
order-ingest as when it ingests orders, and is neither stored nor logged.

A service that does not answer in time is listed as unavailable, and the rest is shown.`,
		Example: `  boomctl customers show cus_7hq2mz4k
  boomctl customers show ann@example.com --orders 50
  boomctl customers show --source shop-eu --platform-id 4417
  boomctl customers show ann@example.com -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			req := &customersv1.GetCustomerRequest{OrdersLimit: orders}
			switch {
			case len(args) == 1 && (source != "" || platformID != ""):
				return usagef("name the customer by an argument or by --source and --platform-id, not both")
			case len(args) == 1 && strings.Contains(args[0], "@"):
				req.Customer = &customersv1.GetCustomerRequest_Email{Email: args[0]}
			case len(args) == 1:
				req.Customer = &customersv1.GetCustomerRequest_CustomerId{CustomerId: args[0]}
			case source != "" && platformID != "":
				req.Customer = &customersv1.GetCustomerRequest_Platform{Platform: &customersv1.PlatformCustomer{Source: source, PlatformCustomerId: platformID}}
			case source != "" || platformID != "":
				return usagef("--source and --platform-id go together")
			default:
				return usagef("name the customer: an id, an e-mail, or --source and --platform-id")
			}
			if orders < 0 || orders > 200 {
				return usagef("--orders: want 0 (the server's default, 20) to 200, got %d", orders)
			}
			conn, err := a.dial(cmd)
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := customersv1.NewCustomerServiceClient(conn).GetCustomer(cmd.Context(), req)
			if err != nil {
				return &callError{method: "GetCustomer", addr: a.addr, err: err}
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			return printCustomer(a.stdout, resp)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&source, "source", "", "the shop of --platform-id")
	fs.StringVar(&platformID, "platform-id", "", "the customer's id on --source")
	fs.Int32Var(&orders, "orders", 0, "most recent orders to list (0: the server's default, 20; at most 200)")
	return cmd
}

// printCustomer writes the 360 read for a person: the customer, then
// each service's part, and which services did not answer.
func printCustomer(w io.Writer, r *customersv1.GetCustomerResponse) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Customer:\t%s\n", r.GetCustomerId())
	var keys []string
	for _, k := range r.GetIdentityKeys() {
		s := enumName(k.GetKind().String(), "IDENTITY_KIND_")
		if k.GetSource() != "" {
			s += " (" + k.GetSource() + ")"
		}
		keys = append(keys, s+" since "+timestamp(k.GetFirstSeenAt()))
	}
	fmt.Fprintf(tw, "Identity keys:\t%s\n", dash(strings.Join(keys, "; ")))
	unavailable := map[string]bool{}
	for _, u := range r.GetUnavailable() {
		unavailable[u] = true
	}
	missing := func(service string) string {
		if unavailable[service] {
			return "- (" + service + " did not answer)"
		}
		return "-"
	}
	if acct := r.GetAccount(); acct != nil {
		fmt.Fprintf(tw, "Points:\t%d\n", acct.GetBalance())
		fmt.Fprintf(tw, "Tier:\t%s (qualifying spend %s)\n", dash(acct.GetTier().GetName()), formatMoney(acct.GetTier().GetQualifyingSpend()))
	} else {
		fmt.Fprintf(tw, "Points:\t%s\n", missing("points-ledger"))
	}
	if p := r.GetProfile(); p != nil {
		var flags []string
		for _, fl := range p.GetFlags() {
			flags = append(flags, enumName(fl.String(), "FLAG_"))
		}
		fmt.Fprintf(tw, "Segment:\t%s\n", segmentName(p.GetSegment()))
		fmt.Fprintf(tw, "Flags:\t%s\n", dash(strings.Join(flags, ", ")))
		fmt.Fprintf(tw, "RFM:\tR%d F%d M%d\n", p.GetRfm().GetRecency(), p.GetRfm().GetFrequency(), p.GetRfm().GetMonetary())
		if pr := p.GetPrediction(); pr != nil {
			fmt.Fprintf(tw, "CLV:\t%s over %d days\n", formatMoney(pr.GetClv()), pr.GetHorizonDays())
		} else {
			fmt.Fprintf(tw, "CLV:\t-\n")
		}
	} else {
		fmt.Fprintf(tw, "Segment:\t%s\n", missing("segmentation"))
	}
	if unavailable["feedback"] {
		fmt.Fprintf(tw, "Open cases:\t%s\n", missing("feedback"))
	} else {
		fmt.Fprintf(tw, "Open cases:\t%d\n", len(r.GetOpenCases()))
	}
	fmt.Fprintf(tw, "Orders:\t%d in all, %d listed\n", r.GetOrderCount(), len(r.GetOrders()))
	if len(r.GetUnavailable()) > 0 {
		fmt.Fprintf(tw, "Unavailable:\t%s (their part is missing; ask again)\n", strings.Join(r.GetUnavailable(), ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.GetOpenCases()) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CASE\tREASON\tOPENED\tCLAIMED BY")
		for _, c := range r.GetOpenCases() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.GetCaseId(), enumName(c.GetReason().String(), "AGONY_REASON_"),
				timestamp(c.GetOpenedAt()), dash(c.GetClaimedBy()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.GetOrders()) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tORDER\tSTATUS\tTOTAL\tREFUNDED\tPLACED\tPAID")
		for _, o := range r.GetOrders() {
			refunded := "-"
			if o.GetRefunded().GetMinorUnits() != 0 {
				refunded = formatMoney(o.GetRefunded())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.GetSource(), o.GetOrderId(), enumName(o.GetStatus().String(), "ORDER_STATUS_"),
				withBase(o.GetTotal(), o.GetBaseTotal()), refunded, timestamp(o.GetPlacedAt()), timestamp(o.GetPaidAt()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
