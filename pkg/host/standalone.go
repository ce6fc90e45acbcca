package host

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/sqldb"
	"github.com/boomerang-loyalty/boomerang/pkg/telemetry"
)

// Standalone is the main of a service's own binary in the distributed
// deployment: "healthcheck" as the first argument asks a running
// instance's /healthz; otherwise it reads the common variables (NATS_URL
// and the credentials NATSCredentials reads, BOOMERANG_GRPC_ADDR, BOOMERANG_HTTP_ADDR, BOOMERANG_API_TOKENS, TLS,
// OpenTelemetry, log level), opens the module's database, builds the
// service and serves it until ctx ends. It returns the process exit code.
func Standalone(ctx context.Context, mod Module, args []string, env config.Source) int {
	name := mod.Name
	if len(args) > 0 && args[0] == "healthcheck" {
		addr := HTTPAddr.Read(config.NewReader(env))
		if err := CheckHealth(addr); err != nil {
			fmt.Fprintln(os.Stderr, name+": unhealthy:", err)
			return 1
		}
		return 0
	}
	if err := standalone(ctx, mod, env); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}

func standalone(ctx context.Context, mod Module, env config.Source) error {
	name := mod.Name
	r := config.NewReader(env)
	natsURL := NATSURL.Read(r)
	// The declared default is the single process's SQLite file; a
	// service binary is told its database.
	dbURL := r.String(mod.DatabaseURL.Name, "")
	grpcAddr := GRPCAddr.Read(r)
	httpAddr := HTTPAddr.Read(r)
	tokenSpec := APITokens.Read(r)
	otlp := OTLPEndpoint.Read(r)
	otlpInsecure := OTLPInsecure.Read(r)
	certFile := TLSCertFile.Read(r)
	keyFile := TLSKeyFile.Read(r)
	pprof := Pprof.Read(r)
	staleAfter := OutboxStaleAfter.Read(r)
	level := ReadLogLevel(r)
	natsCreds := NATSCredentials(env, name)
	if natsURL == "" {
		r.Fail("NATS_URL", "required")
	} else if err := CheckNATS(natsURL, natsCreds); err != nil {
		r.Fail("NATS_URL", "%v", err)
	}
	if natsCreds.User != "" && !natsx.ValidUserName(natsCreds.User) {
		r.Fail("NATS_USER", "%q: want letters, digits, '-' or '_' (it names the user's inbox)", natsCreds.User)
	}
	if dbURL == "" {
		r.Fail(mod.DatabaseURL.Name, "required (postgres://… or sqlite:PATH)")
	}
	if err := r.Err(); err != nil {
		return err
	}
	tokens, err := grpcx.ParseTokens(tokenSpec)
	if err != nil {
		return fmt.Errorf("BOOMERANG_API_TOKENS: %w", err)
	}
	if tokens.Len() == 0 {
		return errors.New("BOOMERANG_API_TOKENS: required")
	}
	log := telemetry.NewLogger(os.Stderr, level)
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: name, OTLPEndpoint: otlp, OTLPInsecure: otlpInsecure})
	if err != nil {
		return err
	}
	defer tel.Shutdown(context.Background())
	nc, js, err := natsx.Connect(natsURL, name, log, natsCreds.Options()...)
	if err != nil {
		return err
	}
	defer nc.Close()
	defer nc.Drain()
	db, err := sqldb.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	deps := Deps{Config: env, DB: db, JetStream: js, Log: log, Telemetry: tel, cleanups: &cleanups}
	deps.Peers = RemotePeers(&deps)
	svc, err := mod.Build(ctx, deps)
	if err != nil {
		return err
	}
	h, err := New(Options{
		GRPCAddr: grpcAddr, HTTPAddr: httpAddr, Tokens: tokens, Log: log, Telemetry: tel,
		TLSCertFile: certFile, TLSKeyFile: keyFile, Pprof: pprof, OutboxStaleAfter: staleAfter,
	}, svc)
	if err != nil {
		return err
	}
	log.Info(name+" started", "grpc", h.GRPCAddr(), "http", h.HTTPAddr())
	return h.Run(ctx)
}
