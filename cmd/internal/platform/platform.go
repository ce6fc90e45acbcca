// Package platform is the single-process Boomerang: an embedded NATS server
// (or an external one), SQLite databases (or PostgreSQL), and every service
// behind one gRPC port, with /metrics and /healthz on an HTTP port. The
// boomerang command, the end-to-end tests and the load benchmark run it.
package platform

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/telemetry"
	feedback "github.com/boomerang-loyalty/boomerang/services/feedback/service"
	ingest "github.com/boomerang-loyalty/boomerang/services/ingest/service"
	ledger "github.com/boomerang-loyalty/boomerang/services/ledger/service"
	segmentation "github.com/boomerang-loyalty/boomerang/services/segmentation/service"
)

// Config is the runner's own configuration; each service reads its own.
type Config struct {
	DataDir      string
	GRPCAddr     string
	HTTPAddr     string
	NATSURL      string // empty: embedded server
	EmbeddedNATS string // host:port of the embedded server
	Tokens       string
	LogLevel     slog.Level
	OTLPEndpoint string
	OTLPInsecure bool
	TLSCertFile  string
	TLSKeyFile   string
	// Pprof serves /debug/pprof/ on the HTTP port to admin tokens.
	Pprof bool
	// OutboxStaleAfter: /healthz reports a service degraded when its
	// oldest unpublished outbox message is older.
	OutboxStaleAfter time.Duration
	// Services are the services this process runs (default all); the
	// others may run elsewhere against the same NATS.
	Services map[string]bool
}

// AllServices are the services the platform can run, in start order.
var AllServices = shortNames(Modules)

func shortNames(mods []host.Module) []string {
	names := make([]string, len(mods))
	for i, mod := range mods {
		names[i] = mod.Short()
	}
	return names
}

// Every service offers its outbox's parked messages to operators through
// the host (OutboxAdminService, under the names above), in this process as
// in its own binary.
var (
	_ host.OutboxOwner = (*ingest.Service)(nil)
	_ host.OutboxOwner = (*ledger.Service)(nil)
	_ host.OutboxOwner = (*segmentation.Service)(nil)
	_ host.OutboxOwner = (*feedback.Service)(nil)
)

// Vars are the runner's own variables; it reads host.Vars too, and each
// service its own.
var Vars = config.NewSet("Single-process runner", 2, "Read only by `boomerang`, the whole platform in one process (`make run`).")

// The runner's variables.
var (
	DataDir = Vars.String("BOOMERANG_DATA_DIR", "data",
		"Directory of the embedded NATS store, the SQLite files and the generated secrets (`admin.token`, `identity.key`, `nats-<user>.password`).")
	EmbeddedNATS = Vars.String("BOOMERANG_EMBEDDED_NATS_ADDR", "127.0.0.1:4223",
		"Where the embedded NATS server listens (`:-1` for any free port); unused with `NATS_URL`. A non-loopback address requires `NATS_SHOP_PASSWORD`.")
	ServicesVar = Vars.String("BOOMERANG_SERVICES", strings.Join(AllServices, ","),
		"The services this process runs; the others may run elsewhere on the same NATS. Feedback asks segmentation for customer values through this process's gRPC port when both run here, else through `FEEDBACK_SEGMENTATION_ADDR`.")
)

// LoadConfig reads the runner's variables and the process's.
func LoadConfig(src config.Source) (Config, error) {
	r := config.NewReader(src)
	c := Config{
		DataDir:          DataDir.Read(r),
		GRPCAddr:         host.GRPCAddr.Read(r),
		HTTPAddr:         host.HTTPAddr.Read(r),
		NATSURL:          host.NATSURL.Read(r),
		EmbeddedNATS:     EmbeddedNATS.Read(r),
		Tokens:           host.APITokens.Read(r),
		OTLPEndpoint:     host.OTLPEndpoint.Read(r),
		OTLPInsecure:     host.OTLPInsecure.Read(r),
		TLSCertFile:      host.TLSCertFile.Read(r),
		TLSKeyFile:       host.TLSKeyFile.Read(r),
		Pprof:            host.Pprof.Read(r),
		OutboxStaleAfter: host.OutboxStaleAfter.Read(r),
		LogLevel:         host.ReadLogLevel(r),
	}
	c.Services = map[string]bool{}
	for _, name := range strings.Split(ServicesVar.Read(r), ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
		case !slices.Contains(AllServices, name):
			r.Fail("BOOMERANG_SERVICES", "unknown service %q, want some of %s", name, strings.Join(AllServices, ","))
		default:
			c.Services[name] = true
		}
	}
	if len(c.Services) == 0 {
		r.Fail("BOOMERANG_SERVICES", "no service named, want some of %s", strings.Join(AllServices, ","))
	}
	return c, r.Err()
}

// Main is the single-process platform; tests start it on free ports.
type Main struct {
	Config Config
	// Logs receives the JSON log lines.
	Logs io.Writer
	// Ledger is the points-ledger service (tests verify its store).
	Ledger *ledger.Service
	// Segmentation is the segmentation service (tests refit it).
	Segmentation *segmentation.Service
	// Feedback is the feedback service (tests sweep it).
	Feedback *feedback.Service
	// Ingest is the order-ingest service (its webhook address).
	Ingest *ingest.Service
	// Each is nil when BOOMERANG_SERVICES leaves it out.

	log       *slog.Logger
	tel       *telemetry.Telemetry
	ns        *server.Server
	conns     []*nats.Conn // one per service, each as its own user
	natsCreds map[string]natsx.Credentials
	natsFiles map[string]string // user → its generated password file
	dbs       []*sqldb.DB
	host      *host.Host
	tokenFile string
	cleanups  []func()         // the services' Deps.Defer, run last first
	selfConns []*host.SelfConn // in-process gRPC clients, connected once the port is open
}

// New returns a platform logging to stderr.
func New() *Main { return &Main{Logs: os.Stderr} }

// Open reads the configuration from env and starts everything but the
// services' work, which Run starts.
func (m *Main) Open(ctx context.Context, env config.Source) (err error) {
	defer func() {
		if err != nil {
			_ = m.Close()
		}
	}()
	if m.Config, err = LoadConfig(env); err != nil {
		return err
	}
	c := m.Config
	m.log = telemetry.NewLogger(m.Logs, c.LogLevel)
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if m.tel, err = telemetry.Setup(ctx, telemetry.Options{Service: "boomerang", OTLPEndpoint: c.OTLPEndpoint, OTLPInsecure: c.OTLPInsecure}); err != nil {
		return err
	}

	natsURL := c.NATSURL
	hostName, port, err := splitHostPort(c.EmbeddedNATS)
	if natsURL == "" && err != nil {
		return fmt.Errorf("BOOMERANG_EMBEDDED_NATS_ADDR: %w", err)
	}
	users, err := m.busCredentials(env, hostName)
	if err != nil {
		return err
	}
	if natsURL == "" {
		m.ns, err = natsx.RunEmbedded(natsx.EmbeddedOptions{Host: hostName, Port: port, StoreDir: filepath.Join(c.DataDir, "nats"), Users: users})
		if err != nil {
			return err
		}
		natsURL = m.ns.ClientURL()
	}

	// Secrets: a newcomer's `make run` needs none; they are generated once
	// and kept in the data directory. Deployments set them explicitly.
	secret, err := m.secret(env, host.IdentitySecret.Name, "identity.key")
	if err != nil {
		return err
	}
	tokens, err := m.tokens()
	if err != nil {
		return err
	}

	var services []host.Service
	peers := &selfPeers{m: m, tokens: tokens}
	for _, mod := range Modules {
		if !c.Services[mod.Short()] {
			continue
		}
		svc, err := m.openModule(ctx, mod, env, natsURL, secret, peers)
		if err != nil {
			return err
		}
		services = append(services, svc)
		switch svc := svc.(type) {
		case *ingest.Service:
			m.Ingest = svc
		case *ledger.Service:
			m.Ledger = svc
		case *segmentation.Service:
			m.Segmentation = svc
		case *feedback.Service:
			m.Feedback = svc
		}
	}
	m.log.Info("services", "run", strings.Join(slices.DeleteFunc(slices.Clone(AllServices), func(s string) bool { return !c.Services[s] }), ","))

	m.host, err = host.New(host.Options{
		GRPCAddr: c.GRPCAddr, HTTPAddr: c.HTTPAddr, Tokens: tokens, Log: m.log, Telemetry: m.tel,
		TLSCertFile: c.TLSCertFile, TLSKeyFile: c.TLSKeyFile, Pprof: c.Pprof, OutboxStaleAfter: c.OutboxStaleAfter,
	}, services...)
	if err != nil {
		return err
	}
	for _, conn := range m.selfConns {
		if err := conn.Connect(m.host.GRPCAddr(), c.TLSCertFile != ""); err != nil {
			return err
		}
	}
	return nil
}

// openDB opens a service's database; Close closes it.
func (m *Main) openDB(ctx context.Context, url string) (*sqldb.DB, error) {
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	m.dbs = append(m.dbs, db)
	return db, nil
}

// Modules are the services the platform can run, in start order.
var Modules = []host.Module{ingest.Module, ledger.Module, segmentation.Module, feedback.Module}

// openModule starts a service as its own binary would, on its own bus user,
// on its SQLite file under the data directory unless its database variable
// names another database.
func (m *Main) openModule(ctx context.Context, mod host.Module, env config.Source, natsURL, secret string, peers host.Peers) (host.Service, error) {
	js, err := m.bus(natsURL, mod.Short())
	if err != nil {
		return nil, err
	}
	env = withDefaults(env, map[string]string{
		mod.DatabaseURL.Name:     "sqlite:" + filepath.Join(m.Config.DataDir, mod.SQLiteFile),
		host.IdentitySecret.Name: secret,
	})
	url := config.NewReader(env).String(mod.DatabaseURL.Name, "")
	db, err := m.openDB(ctx, url)
	if err != nil {
		return nil, err
	}
	deps := host.Deps{Config: env, DB: db, JetStream: js, Log: m.log, Telemetry: m.tel, Peers: peers}
	return mod.Build(ctx, deps.WithCleanups(&m.cleanups))
}

// selfPeers reaches a service running in this process on the process's own
// gRPC port, with a token for the scope made at start-up, and any other at
// its configured address.
type selfPeers struct {
	m      *Main
	tokens *grpcx.Tokens
}

func (p *selfPeers) Dial(peer, scope, addr string, o grpcx.ClientOptions) (grpc.ClientConnInterface, error) {
	if !p.m.Config.Services[peer] {
		deps := host.Deps{}.WithCleanups(&p.m.cleanups)
		return host.RemotePeers(&deps).Dial(peer, scope, addr, o)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	conn := &host.SelfConn{Token: hex.EncodeToString(raw)}
	p.tokens.Add(conn.Token, scope)
	p.m.selfConns = append(p.m.selfConns, conn)
	return conn, nil
}

// Run serves until ctx is cancelled, giving the heap's free memory back
// to the kernel whenever the process falls idle.
func (m *Main) Run(ctx context.Context) error {
	m.log.Info("boomerang started", "grpc", m.host.GRPCAddr(), "http", m.host.HTTPAddr(), "nats", m.NATSURL())
	tctx, stop := context.WithCancel(ctx)
	trimmed := make(chan struct{})
	go func() {
		defer close(trimmed)
		newIdleTrimmer(m.log).run(tctx)
	}()
	defer func() { stop(); <-trimmed }()
	return m.host.Run(ctx)
}

// Close releases what Open acquired.
func (m *Main) Close() error {
	var err error
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i]()
	}
	for _, conn := range m.selfConns {
		err = errors.Join(err, conn.Close())
	}
	for _, nc := range m.conns {
		// Drain so acks and publishes in flight reach the server.
		_ = nc.Drain()
		nc.Close()
	}
	for _, db := range m.dbs {
		err = errors.Join(err, db.Close())
	}
	if m.ns != nil {
		m.ns.Shutdown()
		m.ns.WaitForShutdown()
	}
	if m.tel != nil {
		err = errors.Join(err, m.tel.Shutdown(context.Background()))
	}
	return err
}

// GRPCAddr, HTTPAddr and NATSURL tell where the platform listens.
func (m *Main) GRPCAddr() string { return m.host.GRPCAddr() }
func (m *Main) HTTPAddr() string { return m.host.HTTPAddr() }
func (m *Main) NATSURL() string {
	if m.ns != nil {
		return m.ns.ClientURL()
	}
	return m.Config.NATSURL
}

// PrintAddresses tells a person at the terminal where everything is.
func (m *Main) PrintAddresses(w io.Writer) {
	fmt.Fprintf(w, "Boomerang is running.\n")
	fmt.Fprintf(w, "  gRPC (all services, health, reflection): %s\n", m.GRPCAddr())
	fmt.Fprintf(w, "  HTTP /metrics and /healthz:              http://%s\n", m.HTTPAddr())
	fmt.Fprintf(w, "  NATS (publish orders to boomerang.ingest.orders.<source>): %s\n", m.NATSURL())
	if m.Ingest != nil && m.Ingest.WebhookAddr() != "" {
		fmt.Fprintf(w, "  Webhooks (signed, INGEST_WEBHOOK_*):     http://%s/webhooks/<platform>/<source>\n", m.Ingest.WebhookAddr())
	}
	if m.tokenFile != "" {
		fmt.Fprintf(w, "  API token (admin):                       %s\n", m.tokenFile)
	}
	if m.ns != nil {
		// Shops publish as "shop" with replies on its own inbox; boomctl
		// follows the bus as "admin".
		for _, u := range []struct{ name, what string }{{busauth.Shop, "shops, publish only"}, {busauth.Admin, "operator, boomctl events"}} {
			where := host.NATSPasswordOf.For(u.name)
			if f, ok := m.natsFiles[u.name]; ok {
				where = f
			}
			fmt.Fprintf(w, "  NATS user %-6q (%s): password in %s, inbox prefix %s\n", u.name, u.what, where, natsx.InboxPrefix(u.name))
		}
	}
}

// secret returns the variable's value or a secret generated once and kept
// in the data directory.
func (m *Main) secret(env config.Source, name, file string) (string, error) {
	if v, ok := env(name); ok && strings.TrimSpace(v) != "" {
		return v, nil
	}
	path := filepath.Join(m.Config.DataDir, file)
	v, err := readOrCreate(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

func (m *Main) tokens() (*grpcx.Tokens, error) {
	if m.Config.Tokens != "" {
		t, err := grpcx.ParseTokens(m.Config.Tokens)
		if err != nil {
			return nil, fmt.Errorf("BOOMERANG_API_TOKENS: %w", err)
		}
		return t, nil
	}
	m.tokenFile = filepath.Join(m.Config.DataDir, "admin.token")
	tok, err := readOrCreate(m.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	t := &grpcx.Tokens{}
	t.Add(tok, grpcx.ScopeAdmin)
	return t, nil
}

// readOrCreate reads a secret file, creating it with 32 random bytes (hex)
// readable by the owner only when it does not exist.
func readOrCreate(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	v := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", err
	}
	return v, nil
}

func withDefaults(env config.Source, defaults map[string]string) config.Source {
	return func(name string) (string, bool) {
		if v, ok := env(name); ok && strings.TrimSpace(v) != "" {
			return v, true
		}
		v, ok := defaults[name]
		return v, ok
	}
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return h, port, nil
}
