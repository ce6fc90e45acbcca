package host

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/telemetry"
)

// A Module is one service as both run modes start it: its own binary
// (Standalone) and the single process (cmd/internal/platform), which loops
// over the modules BOOMERANG_SERVICES selects. Each service exports one.
type Module struct {
	// Name is the service's name in logs, traces and health ("order-ingest").
	Name string
	// DatabaseURL is the service's database variable.
	DatabaseURL config.StringVar
	// SQLiteFile is the single process's database, under BOOMERANG_DATA_DIR,
	// when DatabaseURL is unset.
	SQLiteFile string
	// Build reads the service's configuration from d.Config and wires it.
	Build func(ctx context.Context, d Deps) (Service, error)
}

// Short is the service's short name: its bus user and its name in
// BOOMERANG_SERVICES ("order-ingest" → "ingest").
func (m Module) Short() string { return m.Name[strings.LastIndex(m.Name, "-")+1:] }

// Deps are what both run modes give a module's Build.
type Deps struct {
	Config    config.Source
	DB        *sqldb.DB
	JetStream jetstream.JetStream
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
	// Peers reaches the gRPC APIs of other services.
	Peers Peers

	cleanups *[]func()
}

// Defer runs fn when the service has stopped, before the database and NATS
// connections close (for clients Build opened).
func (d Deps) Defer(fn func()) { *d.cleanups = append(*d.cleanups, fn) }

// Peers dials other services: in the single process a service running
// there is reached on the process's own gRPC port with a token made for
// the scope at start-up, so calls keep their deadlines and no service
// reaches into another; otherwise at addr. It returns nil when the peer
// runs elsewhere and addr is empty.
type Peers interface {
	Dial(peer, scope, addr string, o grpcx.ClientOptions) (grpc.ClientConnInterface, error)
}

// remotePeers dials every peer at its configured address.
type remotePeers struct{ deps *Deps }

func (p remotePeers) Dial(_, _, addr string, o grpcx.ClientOptions) (grpc.ClientConnInterface, error) {
	if addr == "" {
		return nil, nil
	}
	conn, err := grpcx.Dial(addr, o)
	if err != nil {
		return nil, err
	}
	p.deps.Defer(func() { _ = conn.Close() })
	return conn, nil
}

// SelfConn is a client connection to the process's own gRPC port, made once
// the port is open (Connect). Until then, during start-up only, calls fail
// with Unavailable, which callers already survive.
type SelfConn struct {
	Token string

	mu   sync.Mutex
	conn *grpc.ClientConn
}

// Connect dials the process's own port.
func (s *SelfConn) Connect(addr string, useTLS bool) error {
	// The certificate names the public host, not the loopback address
	// this connection to ourselves uses.
	conn, err := grpcx.Dial(loopback(addr), grpcx.ClientOptions{Token: s.Token, TLS: useTLS, InsecureSkipVerify: useTLS})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	return nil
}

func (s *SelfConn) get() (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil, status.Error(codes.Unavailable, "in-process client not connected yet")
	}
	return s.conn, nil
}

// Invoke implements grpc.ClientConnInterface.
func (s *SelfConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	c, err := s.get()
	if err != nil {
		return err
	}
	return c.Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (s *SelfConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c, err := s.get()
	if err != nil {
		return nil, err
	}
	return c.NewStream(ctx, desc, method, opts...)
}

// Close closes the connection, if made.
func (s *SelfConn) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.Close()
}

// WithCleanups returns d whose Defer appends to list; the caller runs the
// functions, last first, once the service has stopped.
func (d Deps) WithCleanups(list *[]func()) Deps {
	d.cleanups = list
	return d
}

// RemotePeers dials every peer at its configured address, closing the
// connections with d's cleanups.
func RemotePeers(d *Deps) Peers { return remotePeers{d} }
