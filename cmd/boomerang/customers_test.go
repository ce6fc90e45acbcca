package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	customersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/customers/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	ordersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

// TestCustomer360EndToEnd: a customer's orders on two shops, joined by
// e-mail, are read back in one call by e-mail, by platform id and by id:
// the same customer, the orders most recent first, the points the default
// programme gives (one a euro, rounded down per order), a segment, and no
// clear key anywhere in the answer. The call needs customers:read.
func TestCustomer360EndToEnd(t *testing.T) {
	const reader360 = "customers-reader-0123456789abcdef"
	p := startPlatform(t, t.TempDir(), map[string]string{
		"BOOMERANG_API_TOKENS": writerToken + ":ingest:write,ingest:read;" + reader360 + ":customers:read;" +
			readerToken + ":ingest:read",
		"BOOMERANG_BASE_CURRENCY":         "EUR",
		"SEGMENTATION_MIN_SCORE_INTERVAL": "0s",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Second)
	order := func(source, id string, kind ordersv1.OrderEventKind, at time.Time, minor int64, platformID, email string) *ingestv1.Order {
		return &ingestv1.Order{
			Source: source, OrderId: id, Kind: kind, OccurredAt: timestamppb.New(at), Channel: "web",
			Total:    &commonv1.Money{MinorUnits: minor, Currency: "EUR"},
			Customer: &ingestv1.CustomerInput{PlatformCustomerId: platformID, Email: email},
		}
	}
	paid, placed := ordersv1.OrderEventKind_ORDER_EVENT_KIND_PAID, ordersv1.OrderEventKind_ORDER_EVENT_KIND_PLACED
	orders := []*ingestv1.Order{
		order("shop-eu", "E-1", paid, now.AddDate(0, 0, -5), 120_50, "P-1", "cara.unique@example.com"),
		order("shop-us", "U-2", paid, now.AddDate(0, 0, -2), 35_99, "", " Cara.Unique@Example.com"),
		order("shop-eu", "E-3", placed, now.AddDate(0, 0, -1), 10_00, "P-1", ""),
		order("shop-eu", "X-1", paid, now.AddDate(0, 0, -3), 50_00, "P-2", "dan@example.com"),
	}
	resp, err := ingestv1.NewIngestServiceClient(p.conn).SubmitOrders(ctx, &ingestv1.SubmitOrdersRequest{Orders: orders})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.GetResults() {
		if r.GetOutcome() != ingestv1.OrderOutcome_ORDER_OUTCOME_ACCEPTED {
			t.Fatalf("order %d: %v", i, r)
		}
	}
	cara := resp.GetResults()[0].GetCustomerId()
	if resp.GetResults()[1].GetCustomerId() != cara || resp.GetResults()[2].GetCustomerId() != cara || resp.GetResults()[3].GetCustomerId() == cara {
		t.Fatalf("customers %v: want the first three orders one customer", resp.GetResults())
	}

	rc, err := grpcx.Dial(p.m.GRPCAddr(), grpcx.ClientOptions{Token: reader360})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	customers := customersv1.NewCustomerServiceClient(rc)
	byEmail := &customersv1.GetCustomerRequest{Customer: &customersv1.GetCustomerRequest_Email{Email: "CARA.unique@example.com"}}

	// Paid orders of EUR 120.50 and 35.99: 120 + 35 points; the placed
	// order earns nothing until it is paid.
	const wantPoints = 120 + 35
	var c *customersv1.GetCustomerResponse
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err = customers.GetCustomer(ctx, byEmail)
		if err == nil && c.GetAccount().GetBalance() == wantPoints &&
			c.GetProfile().GetSegment() != 0 && c.GetProfile().GetFeatures().GetOrders() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no balance of %d and profile: %v %v", wantPoints, c, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.GetCustomerId() != cara || len(c.GetUnavailable()) != 0 || c.GetOrderCount() != 3 {
		t.Errorf("by e-mail: customer %s, %d orders, unavailable %v; want %s, 3 orders, all services", c.GetCustomerId(), c.GetOrderCount(), c.GetUnavailable(), cara)
	}
	var got []string
	for _, o := range c.GetOrders() {
		got = append(got, o.GetSource()+"/"+o.GetOrderId())
	}
	if strings.Join(got, ",") != "shop-eu/E-3,shop-us/U-2,shop-eu/E-1" {
		t.Errorf("orders %v, want the most recently placed first", got)
	}
	if e1 := c.GetOrders()[2]; e1.GetBaseTotal().GetMinorUnits() != 120_50 || !e1.GetPaidAt().AsTime().Equal(now.AddDate(0, 0, -5)) ||
		e1.GetStatus() != ingestv1.OrderStatus_ORDER_STATUS_PAID {
		t.Errorf("order E-1 %v", e1)
	}
	if e3 := c.GetOrders()[0]; e3.GetPaidAt() != nil || !e3.GetPlacedAt().AsTime().Equal(now.AddDate(0, 0, -1)) {
		t.Errorf("order E-3 %v, want placed and not paid", e3)
	}
	kinds := map[customersv1.IdentityKind]int{}
	for _, k := range c.GetIdentityKeys() {
		kinds[k.GetKind()]++
		if k.GetSource() != "" {
			t.Errorf("key %v: a source the e-mail read cannot know", k)
		}
	}
	if len(c.GetIdentityKeys()) != 2 || kinds[customersv1.IdentityKind_IDENTITY_KIND_EMAIL] != 1 || kinds[customersv1.IdentityKind_IDENTITY_KIND_PLATFORM] != 1 {
		t.Errorf("identity keys %v, want one e-mail and one platform key", c.GetIdentityKeys())
	}
	b, _ := protojson.Marshal(c)
	for _, clear := range []string{"cara.unique", "P-1"} {
		if strings.Contains(strings.ToLower(string(b)), strings.ToLower(clear)) {
			t.Errorf("the answer holds the clear key %q: %s", clear, b)
		}
	}

	for name, req := range map[string]*customersv1.GetCustomerRequest{
		"platform id": {Customer: &customersv1.GetCustomerRequest_Platform{Platform: &customersv1.PlatformCustomer{Source: "shop-eu", PlatformCustomerId: "P-1"}}},
		"id":          {Customer: &customersv1.GetCustomerRequest_CustomerId{CustomerId: cara}},
	} {
		r, err := customers.GetCustomer(ctx, req)
		if err != nil || r.GetCustomerId() != cara || len(r.GetOrders()) != 3 || r.GetAccount().GetBalance() != wantPoints {
			t.Errorf("by %s: %v %v", name, r, err)
			continue
		}
		if name == "platform id" {
			var sources []string
			for _, k := range r.GetIdentityKeys() {
				if k.GetKind() == customersv1.IdentityKind_IDENTITY_KIND_PLATFORM {
					sources = append(sources, k.GetSource())
				}
			}
			if strings.Join(sources, ",") != "shop-eu" {
				t.Errorf("platform keys' sources %v, want the one named", sources)
			}
		}
	}
	r, err := customers.GetCustomer(ctx, &customersv1.GetCustomerRequest{OrdersLimit: 1,
		Customer: &customersv1.GetCustomerRequest_CustomerId{CustomerId: cara}})
	if err != nil || len(r.GetOrders()) != 1 || r.GetOrders()[0].GetOrderId() != "E-3" || r.GetOrderCount() != 3 {
		t.Errorf("orders_limit 1: %v %v", r, err)
	}

	_, err = customers.GetCustomer(ctx, &customersv1.GetCustomerRequest{Customer: &customersv1.GetCustomerRequest_Email{Email: "nobody.here@example.com"}})
	if status.Code(err) != codes.NotFound || strings.Contains(err.Error(), "nobody.here") {
		t.Errorf("an unknown e-mail: %v, want NotFound without the address", err)
	}
	_, err = customers.GetCustomer(ctx, &customersv1.GetCustomerRequest{Customer: &customersv1.GetCustomerRequest_Platform{
		Platform: &customersv1.PlatformCustomer{Source: "shop-us", PlatformCustomerId: "P-1"}}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("the platform id on a shop that never sent it: %v, want NotFound", err)
	}
	if _, err := customers.GetCustomer(ctx, &customersv1.GetCustomerRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no key: %v, want InvalidArgument", err)
	}
	ingestReader, err := grpcx.Dial(p.m.GRPCAddr(), grpcx.ClientOptions{Token: readerToken})
	if err != nil {
		t.Fatal(err)
	}
	defer ingestReader.Close()
	if _, err := customersv1.NewCustomerServiceClient(ingestReader).GetCustomer(ctx, byEmail); status.Code(err) != codes.PermissionDenied {
		t.Errorf("an ingest:read token: %v, want PermissionDenied", err)
	}
}
