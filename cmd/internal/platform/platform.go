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
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/redisx"
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
var AllServices = []string{"ingest", "ledger", "segmentation", "feedback"}

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
	// Each is nil when BOOMERANG_SERVICES leaves it out.

	log       *slog.Logger
	tel       *telemetry.Telemetry
	ns        *server.Server
	conns     []*nats.Conn // one per service, each as its own user
	natsCreds map[string]natsx.Credentials
	natsFiles map[string]string // user → its generated password file
	dbs       []*sqldb.DB
	redis     *redis.Client
	host      *host.Host
	tokenFile string
	profiles  *selfProfiles
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
	var js jetstream.JetStream
	if c.Services["ingest"] {
		if js, err = m.bus(natsURL, "ingest"); err != nil {
			return err
		}
		isvc, err := m.openIngest(ctx, env, js, secret)
		if err != nil {
			return err
		}
		services = append(services, isvc)
	}
	if c.Services["ledger"] {
		if js, err = m.bus(natsURL, "ledger"); err != nil {
			return err
		}
		if m.Ledger, err = m.openLedger(ctx, env, js); err != nil {
			return err
		}
		services = append(services, m.Ledger)
	}
	if c.Services["segmentation"] {
		if js, err = m.bus(natsURL, "segmentation"); err != nil {
			return err
		}
		if m.Segmentation, err = m.openSegmentation(ctx, env, js); err != nil {
			return err
		}
		services = append(services, m.Segmentation)
	}
	if c.Services["feedback"] {
		if js, err = m.bus(natsURL, "feedback"); err != nil {
			return err
		}
		if m.Feedback, err = m.openFeedback(ctx, env, js, tokens); err != nil {
			return err
		}
		services = append(services, m.Feedback)
	}
	m.log.Info("services", "run", strings.Join(slices.DeleteFunc(slices.Clone(AllServices), func(s string) bool { return !c.Services[s] }), ","))

	m.host, err = host.New(host.Options{
		GRPCAddr: c.GRPCAddr, HTTPAddr: c.HTTPAddr, Tokens: tokens, Log: m.log, Telemetry: m.tel,
		TLSCertFile: c.TLSCertFile, TLSKeyFile: c.TLSKeyFile, Pprof: c.Pprof, OutboxStaleAfter: c.OutboxStaleAfter,
	}, services...)
	if err != nil {
		return err
	}
	if m.profiles == nil {
		return nil
	}
	return m.profiles.connect(m.host.GRPCAddr(), c.TLSCertFile != "")
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

// openIngest starts order-ingest on its SQLite file unless
// INGEST_DATABASE_URL names another database.
func (m *Main) openIngest(ctx context.Context, env config.Source, js jetstream.JetStream, secret string) (*ingest.Service, error) {
	cfg, err := ingest.LoadConfig(withDefaults(env, map[string]string{
		"INGEST_DATABASE_URL":    "sqlite:" + filepath.Join(m.Config.DataDir, "ingest.db"),
		host.IdentitySecret.Name: secret,
	}))
	if err != nil {
		return nil, err
	}
	db, err := m.openDB(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	return ingest.New(ctx, cfg, ingest.Deps{DB: db, JetStream: js, Log: m.log, Tracer: m.tel.Tracer, Meter: m.tel.Meter})
}

// openLedger starts points-ledger on its SQLite file unless
// LEDGER_DATABASE_URL names another database.
func (m *Main) openLedger(ctx context.Context, env config.Source, js jetstream.JetStream) (*ledger.Service, error) {
	cfg, err := ledger.LoadConfig(withDefaults(env, map[string]string{
		"LEDGER_DATABASE_URL": "sqlite:" + filepath.Join(m.Config.DataDir, "ledger.db"),
	}))
	if err != nil {
		return nil, err
	}
	db, err := m.openDB(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	return ledger.New(ctx, cfg, ledger.Deps{DB: db, JetStream: js, Log: m.log, Tracer: m.tel.Tracer, Meter: m.tel.Meter})
}

// openSegmentation starts segmentation on its SQLite file unless
// SEGMENTATION_DATABASE_URL names another database, with its hot store in
// Redis when SEGMENTATION_REDIS_URL or REDIS_URL is set and in process
// otherwise.
func (m *Main) openSegmentation(ctx context.Context, env config.Source, js jetstream.JetStream) (*segmentation.Service, error) {
	cfg, err := segmentation.LoadConfig(withDefaults(env, map[string]string{
		"SEGMENTATION_DATABASE_URL": "sqlite:" + filepath.Join(m.Config.DataDir, "segmentation.db"),
	}))
	if err != nil {
		return nil, err
	}
	db, err := m.openDB(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	deps := segmentation.Deps{DB: db, JetStream: js, Log: m.log, Tracer: m.tel.Tracer, Meter: m.tel.Meter}
	if cfg.RedisURL != "" {
		if m.redis, err = redisx.Open(ctx, cfg.RedisURL); err != nil {
			return nil, err
		}
		deps.Redis = m.redis
	}
	return segmentation.New(ctx, cfg, deps)
}

// openFeedback starts the feedback service on its SQLite file unless
// FEEDBACK_DATABASE_URL names another database. When segmentation runs in
// this process too, feedback asks it for segments and values over gRPC
// like the distributed deployment does, on the platform's own port with a
// token made for it at start-up, so the look-ups keep their deadlines and
// no service reaches into another; otherwise it makes no look-ups.
func (m *Main) openFeedback(ctx context.Context, env config.Source, js jetstream.JetStream, tokens *grpcx.Tokens) (*feedback.Service, error) {
	cfg, err := feedback.LoadConfig(withDefaults(env, map[string]string{
		"FEEDBACK_DATABASE_URL": "sqlite:" + filepath.Join(m.Config.DataDir, "feedback.db"),
	}))
	if err != nil {
		return nil, err
	}
	db, err := m.openDB(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	deps := feedback.Deps{DB: db, JetStream: js, Log: m.log, Tracer: m.tel.Tracer, Meter: m.tel.Meter}
	if m.Config.Services["segmentation"] {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		m.profiles = &selfProfiles{token: hex.EncodeToString(raw)}
		tokens.Add(m.profiles.token, "segmentation:read")
		deps.Profiles = m.profiles
	}
	return feedback.New(ctx, cfg, deps)
}

// selfProfiles is feedback's client of segmentation in this process: a
// gRPC connection to the platform's own port, made once the port is open.
// Until then (start-up only) look-ups fail, and the feedback service fills
// the segments in later.
type selfProfiles struct {
	token string
	mu    sync.Mutex
	conn  *grpc.ClientConn
	p     feedback.Profiles
}

func (s *selfProfiles) connect(addr string, useTLS bool) error {
	if h, port, err := net.SplitHostPort(addr); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	// The certificate names the public host, not the loopback address
	// this connection to ourselves uses.
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Token: s.token, TLS: useTLS, InsecureSkipVerify: useTLS})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn, s.p = conn, feedback.SegmentationProfiles(segmentationv1.NewSegmentationServiceClient(conn))
	return nil
}

func (s *selfProfiles) Profile(ctx context.Context, customerID string) (segmentationv1.Segment, money.Money, error) {
	s.mu.Lock()
	p := s.p
	s.mu.Unlock()
	if p == nil {
		return 0, money.Money{}, errors.New("segmentation client not connected yet")
	}
	return p.Profile(ctx, customerID)
}

func (s *selfProfiles) close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.Close()
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
	err := m.profiles.close()
	for _, nc := range m.conns {
		// Drain so acks and publishes in flight reach the server.
		_ = nc.Drain()
		nc.Close()
	}
	for _, db := range m.dbs {
		err = errors.Join(err, db.Close())
	}
	if m.redis != nil {
		err = errors.Join(err, m.redis.Close())
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
