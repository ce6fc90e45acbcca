package busauth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
)

func password(name string) string { return "pw-" + name + "-0123456789abcdef" }

// bus is an embedded server with every Boomerang user and the streams a
// running platform has, one dead letter included.
func bus(tb testing.TB) string {
	tb.Helper()
	var users []natsx.User
	for _, name := range busauth.Names() {
		u, ok := busauth.User(name, password(name))
		if !ok {
			tb.Fatalf("no user %s", name)
		}
		users = append(users, u)
	}
	ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Port: -1, StoreDir: tb.TempDir(), Users: users})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ns.Shutdown)
	platformStreams(tb, ns.ClientURL())
	return ns.ClientURL()
}

// platformStreams creates, as the operator, the streams a running
// platform has, with one dead letter.
func platformStreams(tb testing.TB, url string) {
	tb.Helper()
	admin := dial(tb, url, busauth.Admin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, st := range streams.All() {
		if _, err := admin.js.CreateStream(ctx, st.Config(1, 0)); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := admin.js.Publish(ctx, "boomerang.deadletter.ingest.shop", []byte(`{"customer":{"email":"ann@example.com"}}`)); err != nil {
		tb.Fatal(err)
	}
}

// client is a connection as one user that records the permission
// violations the server reports.
type client struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu     sync.Mutex
	denied []string
}

func dial(tb testing.TB, url, user string) *client {
	tb.Helper()
	c := &client{}
	opts := append(natsx.Credentials{User: user, Password: password(user)}.Options(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.denied = append(c.denied, err.Error())
		}))
	var err error
	if c.nc, err = nats.Connect(url, opts...); err != nil {
		tb.Fatalf("connect as %s: %v", user, err)
	}
	tb.Cleanup(c.nc.Close)
	if c.js, err = jetstream.New(c.nc); err != nil {
		tb.Fatal(err)
	}
	return c
}

// wasDenied waits for the server to report a violation naming subject.
func (c *client) wasDenied(what, subject string) bool {
	want := fmt.Sprintf("Permissions Violation for %s to %q", what, subject)
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c.mu.Lock()
		for _, d := range c.denied {
			if strings.Contains(d, want) {
				c.mu.Unlock()
				return true
			}
		}
		c.mu.Unlock()
	}
	return false
}

// publishDenied publishes and reports whether the server refused it; a
// publish that is allowed is followed by a round trip, so that a refusal
// would have arrived.
func (c *client) publishDenied(tb testing.TB, subject string) bool {
	tb.Helper()
	if err := c.nc.Publish(subject, []byte("x")); err != nil {
		tb.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	return c.wasDenied("Publish", subject)
}

func msgs(tb testing.TB, url, stream string) uint64 {
	tb.Helper()
	admin := dial(tb, url, busauth.Admin)
	s, err := admin.js.Stream(context.Background(), stream)
	if err != nil {
		tb.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

func TestAnonymousAndWrongPasswordRefused(t *testing.T) {
	url := bus(t)
	for _, tt := range []struct {
		name string
		opts []nats.Option
	}{
		{name: "anonymous"},
		{name: "wrong password", opts: []nats.Option{nats.UserInfo(busauth.Shop, password(busauth.Admin))}},
		{name: "unknown user", opts: []nats.Option{nats.UserInfo("mallory", password(busauth.Shop))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := nats.Connect(url, tt.opts...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("error %v, want an authorization violation", err)
			}
		})
	}
}

func TestShopMayOnlyPublishIntake(t *testing.T) { shopMayOnlyPublishIntake(t, bus(t)) }

func shopMayOnlyPublishIntake(t *testing.T, url string) {
	shop := dial(t, url, busauth.Shop)
	ctx := context.Background()

	// Allowed: intake, with JetStream's acknowledgement on its own inbox.
	for _, subject := range []string{"boomerang.ingest.orders.shop-eu", "boomerang.feedback.in.survey.delighted"} {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := shop.js.Publish(ctx, subject, []byte("{}"))
		cancel()
		if err != nil {
			t.Fatalf("publish to %s: %v", subject, err)
		}
		if ack.Stream != map[bool]string{true: "INGEST", false: "FEEDBACK_IN"}[strings.HasPrefix(subject, "boomerang.ingest.")] {
			t.Fatalf("%s stored in %s", subject, ack.Stream)
		}
	}

	ordersBefore, deadBefore := msgs(t, url, "ORDERS"), msgs(t, url, "DEADLETTER")
	for _, subject := range []string{
		"boomerang.orders.v1.paid.cus_victim", // mint points
		"boomerang.ledger.v1.earned.cus_victim",
		"boomerang.deadletter.ingest.shop",
		"boomerang.ingest.orders.shop.extra", // not an intake subject
		"$JS.API.STREAM.PURGE.DEADLETTER",
		"$JS.API.STREAM.DELETE.ORDERS",
		"$JS.API.STREAM.NAMES",
		"$JS.API.STREAM.LIST",
		"$JS.API.STREAM.INFO.DEADLETTER",
		"$JS.API.STREAM.MSG.GET.DEADLETTER",
		"$JS.API.DIRECT.GET.DEADLETTER",
		"$JS.API.CONSUMER.CREATE.DEADLETTER",
		"$JS.API.CONSUMER.CREATE.DEADLETTER.spy.boomerang.deadletter.>",
		"$JS.API.CONSUMER.MSG.NEXT.ORDERS.points-ledger",
	} {
		t.Run("publish "+subject, func(t *testing.T) {
			if !shop.publishDenied(t, subject) {
				t.Fatalf("shop may publish to %s", subject)
			}
		})
	}
	if o, d := msgs(t, url, "ORDERS"), msgs(t, url, "DEADLETTER"); o != ordersBefore || d != deadBefore {
		t.Fatalf("ORDERS %d → %d, DEADLETTER %d → %d messages", ordersBefore, o, deadBefore, d)
	}

	for _, subject := range []string{"boomerang.deadletter.>", "boomerang.orders.v1.>", "_INBOX.>", "_INBOX.ingest.>", ">"} {
		t.Run("subscribe "+subject, func(t *testing.T) {
			if _, err := shop.nc.SubscribeSync(subject); err != nil {
				t.Fatal(err)
			}
			if err := shop.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if !shop.wasDenied("Subscription", subject) {
				t.Fatalf("shop may subscribe to %s", subject)
			}
		})
	}

	// Through the JetStream API as a client would use it.
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := shop.js.OrderedConsumer(ctx, "DEADLETTER", jetstream.OrderedConsumerConfig{}); err == nil {
		t.Fatal("shop reads DEADLETTER")
	}
	if names := shop.js.StreamNames(ctx); names.Err() == nil {
		for n := range names.Name() {
			t.Errorf("shop lists stream %s", n)
		}
	}
}

// TestServicesPublishOnlyTheirOwn: each service publishes its own events
// and dead letters and nothing another service owns; order-ingest also
// captures its webhooks on the shops' order intake.
func TestServicesPublishOnlyTheirOwn(t *testing.T) {
	url := bus(t)
	// Written out, not derived from busauth: whose subject is whose.
	owners := map[string][]string{
		"boomerang.orders.v1.paid.cus_1":                {busauth.Ingest},
		"boomerang.deadletter.ingest.shop":              {busauth.Ingest},
		"boomerang.ledger.v1.earned.cus_1":              {busauth.Ledger},
		"boomerang.deadletter.ledger.orders":            {busauth.Ledger},
		"boomerang.segmentation.v1.segment_changed.c_1": {busauth.Segmentation},
		"boomerang.deadletter.segmentation.orders":      {busauth.Segmentation},
		"boomerang.feedback.v1.agony.cus_1":             {busauth.Feedback},
		"boomerang.deadletter.feedback.tool":            {busauth.Feedback},
		"boomerang.ingest.orders.shop":                  {busauth.Shop, busauth.Ingest},
		"boomerang.feedback.in.ticket.desk":             {busauth.Shop},
	}
	for _, user := range []string{busauth.Ingest, busauth.Ledger, busauth.Segmentation, busauth.Feedback} {
		c := dial(t, url, user)
		for subject, own := range owners {
			t.Run(user+" "+subject, func(t *testing.T) {
				if denied := c.publishDenied(t, subject); denied != !slices.Contains(own, user) {
					t.Fatalf("%s publishing to %s: denied %v, owners %v", user, subject, denied, own)
				}
			})
		}
	}
}

// TestServicesUseOnlyTheirStreamsAndConsumers: each service can set up
// and work its own consumers; none can purge or delete a stream, list
// streams, or read another's consumer.
func TestServicesUseOnlyTheirStreamsAndConsumers(t *testing.T) {
	servicesUseOnlyTheirStreamsAndConsumers(t, bus(t))
}

func servicesUseOnlyTheirStreamsAndConsumers(t *testing.T, url string) {
	ctx := context.Background()
	type durable struct{ stream, name, filter string }
	own := map[string][]durable{
		busauth.Ingest:       {{"INGEST", "order-ingest", "boomerang.ingest.orders.>"}},
		busauth.Ledger:       {{"ORDERS", "points-ledger", "boomerang.orders.v1.>"}},
		busauth.Segmentation: {{"ORDERS", "segmentation", "boomerang.orders.v1.>"}, {"FEEDBACK", "segmentation-feedback", "boomerang.feedback.v1.>"}},
		busauth.Feedback:     {{"FEEDBACK_IN", "feedback-intake", "boomerang.feedback.in.>"}},
	}
	// One message in each consumed stream, to pull and acknowledge.
	admin := dial(t, url, busauth.Admin)
	for _, subject := range []string{"boomerang.ingest.orders.shop", "boomerang.orders.v1.paid.cus_1", "boomerang.feedback.v1.agony.cus_1", "boomerang.feedback.in.survey.tool"} {
		if _, err := admin.js.Publish(ctx, subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for user, durables := range own {
		c := dial(t, url, user)
		t.Run(user+" works its consumers", func(t *testing.T) {
			for _, d := range durables {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if _, err := c.js.Stream(ctx, d.stream); err != nil {
					t.Fatalf("stream info %s: %v", d.stream, err)
				}
				cons, err := c.js.CreateOrUpdateConsumer(ctx, d.stream, jetstream.ConsumerConfig{Durable: d.name, FilterSubject: d.filter, AckPolicy: jetstream.AckExplicitPolicy})
				if err != nil {
					t.Fatalf("consumer %s on %s: %v", d.name, d.stream, err)
				}
				batch, err := cons.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for m := range batch.Messages() {
					if err := m.DoubleAck(ctx); err != nil {
						t.Fatalf("ack on %s: %v", d.stream, err)
					}
					n++
				}
				if n != 1 || batch.Error() != nil {
					t.Fatalf("pulled %d from %s (%v), want 1", n, d.stream, batch.Error())
				}
				if _, err := cons.Info(ctx); err != nil {
					t.Fatalf("consumer info: %v", err)
				}
			}
		})
		for _, subject := range []string{
			"$JS.API.STREAM.PURGE.ORDERS", "$JS.API.STREAM.PURGE.DEADLETTER", "$JS.API.STREAM.DELETE.ORDERS",
			"$JS.API.STREAM.DELETE.INGEST", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.STREAM.MSG.DELETE.ORDERS",
			"$JS.API.CONSUMER.DELETE.ORDERS.points-ledger", "$JS.API.STREAM.MSG.GET.DEADLETTER",
		} {
			t.Run(user+" "+subject, func(t *testing.T) {
				if !c.publishDenied(t, subject) {
					t.Fatalf("%s may publish to %s", user, subject)
				}
			})
		}
		// Another service's consumer.
		for other, durables := range own {
			if other == user {
				continue
			}
			for _, d := range durables {
				for _, subject := range []string{"$JS.API.CONSUMER.MSG.NEXT." + d.stream + "." + d.name, "$JS.API.CONSUMER.CREATE." + d.stream + "." + d.name} {
					if !c.publishDenied(t, subject) {
						t.Errorf("%s may publish to %s", user, subject)
					}
				}
			}
		}
	}
}
