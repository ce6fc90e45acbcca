package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform/platformtest"
	customersv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/customers/v1"
	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
)

// TestCustomersAgainstPlatform: `customers show` by e-mail, id and
// platform id against the single process, with the admin token the runner
// makes; JSON for scripts, a summary for people, usage errors for a
// customer named twice or not at all.
func TestCustomersAgainstPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole platform")
	}
	dataDir := t.TempDir()
	m := platformtest.Start(t, dataDir, map[string]string{"BOOMERANG_BASE_CURRENCY": "EUR"})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn := []string{"--addr", m.GRPCAddr(), "--token-file", filepath.Join(dataDir, "admin.token")}
	cli := func(args ...string) result {
		t.Helper()
		return boomctl(t, ctx, nil, "", append(append([]string{}, conn...), args...)...)
	}
	r := cli("-o", "json", "orders", "submit", "--source", "shop-eu", "--order-id", "C-1",
		"--occurred-at", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		"--currency", "EUR", "--total", "80.40", "--email", "lou@example.com", "--customer-id", "4417")
	submitted := &ingestv1.SubmitOrdersResponse{}
	decodeOutput(t, r, submitted)
	if r.code != exitOK || len(submitted.GetResults()) != 1 {
		t.Fatalf("order: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	customer := submitted.GetResults()[0].GetCustomerId()

	// One point a euro, rounded down: 80, once the ledger has the order.
	var c *customersv1.GetCustomerResponse
	for deadline := time.Now().Add(30 * time.Second); ; {
		r = cli("-o", "json", "customers", "show", "Lou@Example.com")
		c = &customersv1.GetCustomerResponse{}
		decodeOutput(t, r, c)
		if c.GetAccount().GetBalance() == 80 && c.GetProfile() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no balance of 80 and profile:\n%s%s", r.stdout, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.GetCustomerId() != customer || len(c.GetOrders()) != 1 || c.GetOrders()[0].GetOrderId() != "C-1" || len(c.GetUnavailable()) != 0 {
		t.Errorf("by e-mail:\n%s", r.stdout)
	}
	if strings.Contains(strings.ToLower(r.stdout), "lou@") || strings.Contains(r.stdout, "4417") {
		t.Errorf("the output holds a clear key:\n%s", r.stdout)
	}

	r = cli("customers", "show", customer)
	for _, want := range []string{"Customer:", customer, "Points:", "80", "Segment:", "email since", "platform since",
		"shop-eu", "C-1", "paid", "80.40 EUR"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q: code %d\n%s%s", want, r.code, r.stdout, r.stderr)
		}
	}
	if strings.Contains(r.stdout, "Unavailable") {
		t.Errorf("a service reported unavailable:\n%s", r.stdout)
	}

	r = cli("customers", "show", "--source", "shop-eu", "--platform-id", "4417")
	if r.code != exitOK || !strings.Contains(r.stdout, "platform (shop-eu) since") || !strings.Contains(r.stdout, customer) {
		t.Errorf("by platform id: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = cli("customers", "show", "nobody@example.com")
	if r.code != exitFailure || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("an unknown e-mail: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{
		{"customers", "show"},
		{"customers", "show", customer, "--source", "shop-eu", "--platform-id", "4417"},
		{"customers", "show", "--source", "shop-eu"},
		{"customers", "show", customer, "--orders", "500"},
	} {
		if r := cli(args...); r.code != exitUsage {
			t.Errorf("%v: code %d, want a usage error\n%s", args, r.code, r.stderr)
		}
	}
}
