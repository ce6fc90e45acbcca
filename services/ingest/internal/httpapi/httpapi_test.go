package httpapi_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/httpapi"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/webhook"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	source  = "shop-eu"
	secret  = "webhook-secret-0123456789"
	older   = "older-secret-abcdefghijkl"
	maxBody = 2048
	order   = `{"order_id":"o-1","kind":"paid","occurred_at":"2026-11-01T10:00:00Z","currency":"EUR","total":"10.00","customer":{"email":"ann@example.com"}}`
)

// now is the handler's clock in these tests.
var now = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

type harness struct {
	js      jetstream.JetStream
	handler *httpapi.Handler
	reader  *sdkmetric.ManualReader
}

// start returns a handler of one generic source on a fresh NATS, with the
// INGEST stream unless noStream.
func start(t *testing.T, noStream bool) *harness {
	t.Helper()
	return startWith(t, noStream, httpapi.Source{Name: source, Platform: webhook.Generic, Secret: []byte(secret)})
}

// startWith returns a handler of sources on a fresh NATS, with the INGEST
// stream unless noStream.
func startWith(t *testing.T, noStream bool, sources ...httpapi.Source) *harness {
	t.Helper()
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	if !noStream {
		st, _ := streams.Lookup(streams.Ingest)
		if _, err := js.CreateStream(context.Background(), st.Config(1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	reader := sdkmetric.NewManualReader()
	h, err := httpapi.New(js, slog.New(slog.NewTextHandler(io.Discard, nil)), tracenoop.NewTracerProvider(),
		sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"),
		httpapi.Options{
			Sources:   sources,
			MaxBody:   maxBody,
			Tolerance: 5 * time.Minute, PublishTimeout: 2 * time.Second,
			Now: func() time.Time { return now },
		})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{js: js, handler: h, reader: reader}
}

// sign is Boomerang-Signature for body at t with the secrets given.
func sign(t time.Time, body string, secrets ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	parts := []string{"t=" + ts}
	for _, s := range secrets {
		mac := hmac.New(sha256.New, []byte(s))
		mac.Write([]byte(ts + "." + body))
		parts = append(parts, "v1="+hex.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(parts, ",")
}

type delivery struct {
	method, path, contentType, id, signature, body string
}

// good is a valid delivery of order.
func good() delivery {
	return delivery{http.MethodPost, "/webhooks/generic/" + source, "application/json", "d-1", sign(now, order, secret), order}
}

func (h *harness) post(t *testing.T, d delivery) (int, string) {
	t.Helper()
	r := httptest.NewRequest(d.method, d.path, strings.NewReader(d.body))
	if d.contentType != "" {
		r.Header.Set("Content-Type", d.contentType)
	}
	if d.id != "" {
		r.Header.Set(webhook.HeaderDeliveryID, d.id)
	}
	if d.signature != "" {
		r.Header.Set(webhook.HeaderSignature, d.signature)
	}
	w := httptest.NewRecorder()
	h.handler.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// captured returns the messages on the INGEST stream.
func (h *harness) captured(t *testing.T) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := h.js.Stream(ctx, streams.Ingest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Msgs)
	if n == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

func TestAccepted(t *testing.T) {
	tests := []struct {
		name string
		edit func(*delivery)
	}{
		{"signed", func(*delivery) {}},
		{"rotated: the new secret beside the old", func(d *delivery) { d.signature = sign(now, order, older, secret) }},
		{"rotated: the old secret after the new", func(d *delivery) { d.signature = sign(now, order, secret, older) }},
		{"timestamp within tolerance", func(d *delivery) { d.signature = sign(now.Add(-4*time.Minute), order, secret) }},
		{"charset in content type", func(d *delivery) { d.contentType = "application/json; charset=utf-8" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, false)
			d := good()
			tt.edit(&d)
			if code, body := h.post(t, d); code != http.StatusAccepted {
				t.Fatalf("status %d (%s), want 202", code, body)
			}
			msgs := h.captured(t)
			if len(msgs) != 1 {
				t.Fatalf("captured %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.Subject() != "boomerang.ingest.orders."+source || !bytes.Equal(m.Data(), []byte(order)) {
				t.Errorf("captured %s %q, want the raw body on boomerang.ingest.orders.%s", m.Subject(), m.Data(), source)
			}
			for k, want := range map[string]string{"Nats-Msg-Id": "generic:" + source + ":d-1", "Content-Type": "application/json"} {
				if got := m.Headers().Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestRefused: every refusal has its status and captures nothing.
func TestRefused(t *testing.T) {
	tests := []struct {
		name string
		edit func(*delivery)
		want int
	}{
		{"no signature", func(d *delivery) { d.signature = "" }, http.StatusUnauthorized},
		{"wrong secret", func(d *delivery) { d.signature = sign(now, order, older) }, http.StatusUnauthorized},
		{"body changed", func(d *delivery) { d.body = strings.Replace(order, "10.00", "99.00", 1) }, http.StatusUnauthorized},
		{"timestamp changed", func(d *delivery) {
			d.signature = strings.Replace(d.signature, strconv.FormatInt(now.Unix(), 10), strconv.FormatInt(now.Unix()+1, 10), 1)
		}, http.StatusUnauthorized},
		{"expired", func(d *delivery) { d.signature = sign(now.Add(-6*time.Minute), order, secret) }, http.StatusUnauthorized},
		{"from the future", func(d *delivery) { d.signature = sign(now.Add(6*time.Minute), order, secret) }, http.StatusUnauthorized},
		{"no timestamp", func(d *delivery) { d.signature = d.signature[strings.Index(d.signature, ",")+1:] }, http.StatusUnauthorized},
		{"malformed", func(d *delivery) { d.signature = "sha256=abc" }, http.StatusUnauthorized},
		{"unknown source", func(d *delivery) { d.path = "/webhooks/generic/shop-us" }, http.StatusNotFound},
		{"unknown platform", func(d *delivery) { d.path = "/webhooks/shopify/" + source }, http.StatusNotFound},
		{"extra path", func(d *delivery) { d.path += "/orders" }, http.StatusNotFound},
		{"GET", func(d *delivery) { d.method = http.MethodGet }, http.StatusMethodNotAllowed},
		{"PUT", func(d *delivery) { d.method = http.MethodPut }, http.StatusMethodNotAllowed},
		{"too large", func(d *delivery) {
			d.body = strings.Replace(order, `"o-1"`, `"`+strings.Repeat("x", maxBody)+`"`, 1)
			d.signature = sign(now, d.body, secret)
		}, http.StatusRequestEntityTooLarge},
		{"no content type", func(d *delivery) { d.contentType = "" }, http.StatusUnsupportedMediaType},
		{"form", func(d *delivery) { d.contentType = "application/x-www-form-urlencoded" }, http.StatusUnsupportedMediaType},
		{"no delivery id", func(d *delivery) { d.id = "" }, http.StatusBadRequest},
		{"delivery id too long", func(d *delivery) { d.id = strings.Repeat("a", 129) }, http.StatusBadRequest},
		{"delivery id with a space", func(d *delivery) { d.id = "d 1" }, http.StatusBadRequest},
	}
	h := start(t, false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := good()
			tt.edit(&d)
			if code, body := h.post(t, d); code != tt.want {
				t.Fatalf("status %d (%s), want %d", code, body, tt.want)
			}
		})
	}
	if msgs := h.captured(t); len(msgs) != 0 {
		t.Errorf("captured %d messages from refused deliveries, want none", len(msgs))
	}
	got := testkit.Counter(t, h.reader, "boomerang.ingest.webhooks", "source", "status")
	if got[source+"/401"] != 8 || got["unknown/404"] != 3 || got[source+"/405"] != 2 || got[source+"/413"] != 1 ||
		got[source+"/415"] != 2 || got[source+"/400"] != 3 {
		t.Errorf("boomerang.ingest.webhooks = %v", got)
	}
}

// TestDuplicateDelivery: a shop's retry of a delivery (same id, signed
// anew) is accepted and captured once.
func TestDuplicateDelivery(t *testing.T) {
	h := start(t, false)
	for i := range 3 {
		d := good()
		d.signature = sign(now.Add(time.Duration(i)*time.Second), order, secret)
		if code, body := h.post(t, d); code != http.StatusAccepted {
			t.Fatalf("delivery %d: status %d (%s), want 202", i, code, body)
		}
	}
	other := good()
	other.id = "d-2"
	if code, _ := h.post(t, other); code != http.StatusAccepted {
		t.Fatalf("another delivery: status %d, want 202", code)
	}
	if msgs := h.captured(t); len(msgs) != 2 {
		t.Errorf("captured %d messages, want 2 (one per delivery id)", len(msgs))
	}
}

// TestNotCaptured: without the INGEST stream JetStream acknowledges
// nothing, and the shop is told to retry.
func TestNotCaptured(t *testing.T) {
	h := start(t, true)
	if code, body := h.post(t, good()); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d (%s), want 503", code, body)
	}
	got := testkit.Counter(t, h.reader, "boomerang.ingest.webhooks", "source", "status")
	if got[source+"/503"] != 1 {
		t.Errorf("boomerang.ingest.webhooks = %v, want one 503", got)
	}
}

// TestServe: the server answers on its listener and stops with its
// context.
func TestServe(t *testing.T) {
	h := start(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- httpapi.Serve(ctx, ln, h.handler, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Second)
	}()

	d := good()
	req, err := http.NewRequest(d.method, "http://"+ln.Addr().String()+d.path, strings.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", d.contentType)
	req.Header.Set(webhook.HeaderDeliveryID, d.id)
	req.Header.Set(webhook.HeaderSignature, d.signature)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("status %d, want 202", resp.StatusCode)
	}
	resp, err = http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: status %d, want 404", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("still listening after the context ended")
	}
}
