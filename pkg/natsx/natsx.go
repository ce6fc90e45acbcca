// Package natsx holds what every service needs from NATS JetStream: an
// embedded server for the single-process mode, connections, stream set-up,
// protobuf messages with their id and trace context in the headers, and
// batch consumption.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"
)

// Header names used on every Boomerang message.
const (
	HeaderContentType = "Content-Type"
	ContentTypeProto  = "application/protobuf"
	ContentTypeJSON   = "application/json"
	// HeaderEventType names the protobuf message type of the payload.
	HeaderEventType = "Boomerang-Type"
)

// DuplicateWindow is how long every Boomerang stream remembers the
// Nats-Msg-Id of each message it stored, dropping a second publish of the
// same id. It is there for the outbox relays, which resend a message whose
// ack did not come: within one run the resend follows the first send by at
// most the 30s ack wait, the 10s given to recording acks and a back-off
// of 5s give or take a fifth, so a minute covers it. A resend after longer (a crash
// followed by a slow restart, a bus down for minutes) is stored again,
// and every consumer drops it by its event id, as it already must for a
// redelivery. The server keeps an entry of about 130 bytes per message
// in the window, in each stream, so the window is paid for in memory at
// the publish rate: with NATS's default of two minutes, the single process
// held 100 MB of ids at the end of a load of 2,000 orders a second.
const DuplicateWindow = time.Minute

// EmbeddedOptions configures the in-process NATS server.
type EmbeddedOptions struct {
	Host     string
	Port     int // -1 picks a free port
	StoreDir string
	// MaxPayload bounds message size (default 1 MiB).
	MaxPayload int32
	// Users may connect, each with its own permissions; no one else may.
	// Without users anyone who reaches the port may do anything, which
	// RunEmbedded allows on a loopback address only.
	Users []User
}

// RunEmbedded starts a NATS server with JetStream on local disk inside this
// process and waits until it accepts connections.
func RunEmbedded(o EmbeddedOptions) (*server.Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if len(o.Users) == 0 && !IsLoopback(o.Host) {
		return nil, fmt.Errorf("embedded nats on %s: %w: without users anyone on the network could publish, read and delete every stream", o.Host, ErrNoCredentials)
	}
	users, err := serverUsers(o.Users)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	opts := &server.Options{
		ServerName: "boomerang-embedded",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		MaxPayload: o.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	}
	if len(users) > 0 {
		opts.Users = users
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready after 10s")
	}
	return ns, nil
}

// Connect dials NATS and returns the connection and a JetStream handle. The
// connection reconnects forever; disconnections are logged. opts add to
// the defaults (Credentials.Options, above all).
func Connect(url, name string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			// Permission violations arrive here, not as a call's error.
			if sub != nil {
				log.Error("nats error", "subject", sub.Subject, "error", err)
				return
			}
			log.Error("nats error", "error", err)
		}),
	}, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// EnsureStream creates the stream or updates it to cfg. A stream that
// already has cfg is left alone, without asking to update it: several
// services ensure the streams they share, and on an authorised bus only
// the stream's owner may change it (busauth), so the others must not need
// to.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := EnsureStreamExists(ctx, js, cfg)
	if err != nil || hasConfig(s.CachedInfo().Config, cfg) {
		return s, err
	}
	if s, err = js.UpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("stream %s: update: %w", cfg.Name, err)
	}
	return s, nil
}

// EnsureStreamExists creates the stream with cfg when it is missing and
// otherwise leaves it as it is: what a service does with a stream another
// service owns (busauth). The owner brings the configuration up to date
// whenever it starts, so a service that starts first after an upgrade
// changing a stream's configuration must not need to.
func EnsureStreamExists(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if s, err = js.CreateStream(ctx, cfg); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Created meanwhile, with another configuration.
			s, err = js.Stream(ctx, cfg.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// hasConfig reports whether a stream's configuration is already want, as
// far as the fields the services set go; for a want with other fields set
// it says no, and the stream is updated.
func hasConfig(have, want jetstream.StreamConfig) bool {
	rest := want
	rest.Name, rest.Subjects, rest.Storage, rest.MaxAge, rest.Duplicates, rest.Replicas, rest.Description = "", nil, 0, 0, 0, 0, ""
	if !reflect.ValueOf(rest).IsZero() {
		return false
	}
	if want.Duplicates == 0 {
		want.Duplicates = 2 * time.Minute // the server's default
	}
	return slices.Equal(have.Subjects, want.Subjects) && have.Storage == want.Storage && have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates && have.Replicas == max(want.Replicas, 1) && have.Description == want.Description
}

// HeaderCarrier lets OpenTelemetry propagators read and write W3C trace
// context in NATS headers.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

func (h HeaderCarrier) Get(key string) string { return nats.Header(h).Get(key) }
func (h HeaderCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }
func (h HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// InjectTrace writes the trace context of ctx into h.
func InjectTrace(ctx context.Context, h nats.Header) {
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier(h))
}

// ExtractTrace returns ctx with the remote trace context found in h.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, HeaderCarrier(h))
}

// ProtoHeader returns the headers of a protobuf event: its content type,
// its message type, id as the Nats-Msg-Id (JetStream drops a second publish
// with the same id inside the stream's duplicate window), and the trace
// context of ctx.
func ProtoHeader(ctx context.Context, id string, m proto.Message) nats.Header {
	h := nats.Header{}
	h.Set(jetstream.MsgIDHeader, id)
	h.Set(HeaderContentType, ContentTypeProto)
	h.Set(HeaderEventType, string(m.ProtoReflect().Descriptor().FullName()))
	InjectTrace(ctx, h)
	return h
}
