// Package httpapi is order-ingest's HTTP intake: shops' webhooks, each
// authenticated by its platform's scheme (Platform) with the source's
// secret and answered 202 only once the raw delivery is captured on the
// INGEST stream, where the bus consumer maps and validates it like any
// other input. A shop's retries, not our memory, cover every failure.
package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/webhook"
)

// Source is one shop sending webhooks.
type Source struct {
	// Name is the source of the intake subject (boomerang.ingest.orders.<name>).
	Name     string
	Platform webhook.Platform
	// Secret signs its deliveries; it is never logged.
	Secret []byte
}

// Options configures the handler.
type Options struct {
	Sources []Source
	// MaxBody bounds a delivery in bytes (413 above).
	MaxBody int
	// Tolerance is how far a signed timestamp may be from now.
	Tolerance time.Duration
	// PublishTimeout bounds the wait for JetStream's acknowledgement
	// (503 after it).
	PublishTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// maxPing bounds what is read of a delivery to ask the platform whether
// it is a ping.
const maxPing = 256

// Handler serves POST /webhooks/<platform>/<source>.
type Handler struct {
	js      jetstream.JetStream
	log     *slog.Logger
	tracer  trace.Tracer
	counts  metric.Int64Counter
	opts    Options
	sources map[string]Source // by "<platform>/<source>"
}

// New returns the handler of the sources in opts.
func New(js jetstream.JetStream, log *slog.Logger, tp trace.TracerProvider, meter metric.Meter, opts Options) (*Handler, error) {
	counts, err := meter.Int64Counter("boomerang.ingest.webhooks",
		metric.WithDescription("Webhook deliveries answered, by source and HTTP status."))
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{js: js, log: log, tracer: tp.Tracer("boomerang/ingest/httpapi"), counts: counts, opts: opts, sources: map[string]Source{}}
	for _, s := range opts.Sources {
		h.sources[s.Platform.Name+"/"+s.Name] = s
	}
	return h, nil
}

// reply is one answer: its status, a short message for the sender, and
// the error behind it for the log.
type reply struct {
	status int
	msg    string
	err    error
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	platform, source, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/webhooks/"), "/")
	src, known := h.sources[platform+"/"+source]
	name := "unknown" // an unknown source is not a metric's label: anyone may make one up
	route := "/webhooks/{platform}/{source}"
	if known {
		name, route = src.Name, "/webhooks/"+platform+"/{source}"
	}
	ctx, span := h.tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", route),
			attribute.String("boomerang.source", name)))
	defer span.End()

	id, rep := h.serve(ctx, w, r, src, known)
	span.SetAttributes(attribute.Int("http.response.status_code", rep.status))
	if rep.status >= 500 {
		span.SetStatus(codes.Error, rep.msg)
	}
	h.counts.Add(ctx, 1, metric.WithAttributes(attribute.String("source", name), attribute.String("status", strconv.Itoa(rep.status))))
	level := slog.LevelInfo
	if rep.status >= 500 {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.String("source", name), slog.String("delivery_id", id), slog.Int("status", rep.status)}
	if rep.err != nil {
		attrs = append(attrs, slog.String("error", rep.err.Error()))
	}
	h.log.LogAttrs(ctx, level, "webhook delivery", attrs...)
	if rep.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.msg+"\n")
}

// serve checks a delivery and captures it; it returns the delivery id
// when it got that far.
func (h *Handler) serve(ctx context.Context, w http.ResponseWriter, r *http.Request, src Source, known bool) (string, reply) {
	if r.Method != http.MethodPost {
		return "", reply{http.StatusMethodNotAllowed, "method not allowed", nil}
	}
	if !known {
		return "", reply{http.StatusNotFound, "unknown source", nil}
	}
	if ping := src.Platform.Ping; ping != nil {
		// A ping is small and unsigned: read a little of it, keep nothing.
		head, err := io.ReadAll(io.LimitReader(r.Body, maxPing+1))
		if err == nil && len(head) <= maxPing && ping(r.Header, head) {
			return "", reply{http.StatusOK, "pong", nil}
		}
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(head), r.Body))
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return "", reply{http.StatusUnsupportedMediaType, "content type must be application/json", nil}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.opts.MaxBody)))
	if err != nil {
		if mb := (*http.MaxBytesError)(nil); errors.As(err, &mb) {
			return "", reply{http.StatusRequestEntityTooLarge, fmt.Sprintf("body above %d bytes", h.opts.MaxBody), nil}
		}
		return "", reply{http.StatusBadRequest, "could not read body", err}
	}
	id, err := src.Platform.Verify(r.Header, body, src.Secret, h.opts.Now(), h.opts.Tolerance)
	switch {
	case errors.Is(err, webhook.ErrDeliveryID):
		return "", reply{http.StatusBadRequest, "missing or invalid delivery id", err}
	case err != nil:
		return "", reply{http.StatusUnauthorized, "bad signature", err}
	}
	msg := &nats.Msg{Subject: streams.IngestPrefix + src.Name, Data: body, Header: nats.Header{}}
	if src.Platform.Header != nil {
		for k, vs := range src.Platform.Header(r.Header) {
			msg.Header[k] = vs
		}
	}
	msg.Header.Set(natsx.HeaderContentType, "application/json")
	if src.Platform.Map != nil {
		msg.Header.Set(webhook.HeaderPlatform, src.Platform.Name)
		msg.Header.Set(webhook.HeaderReceivedAt, h.opts.Now().UTC().Format(time.RFC3339))
	}
	msg.Header.Set(jetstream.MsgIDHeader, src.Platform.Name+":"+src.Name+":"+id)
	natsx.InjectTrace(ctx, msg.Header)
	pctx, cancel := context.WithTimeout(ctx, h.opts.PublishTimeout)
	defer cancel()
	if _, err := h.js.PublishMsg(pctx, msg); err != nil {
		return id, reply{http.StatusServiceUnavailable, "not captured, retry later", err}
	}
	return id, reply{http.StatusAccepted, "accepted", nil}
}

// Serve answers on ln until ctx is cancelled, then lets requests in
// flight finish (for up to grace) and returns.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, grace time.Duration) error {
	mux := http.NewServeMux()
	mux.Handle("/webhooks/", h)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	stopped := make(chan error, 1)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		stopped <- srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("webhooks on %s: %w", ln.Addr(), err)
	}
	return <-stopped
}
