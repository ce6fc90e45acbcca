package host

import (
	"log/slog"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
)

// Vars are the variables every Boomerang process reads: the single-process
// runner (cmd/boomerang) and each service binary.
var Vars = config.NewSet("Every process", 0, `Read by the single-process runner (`+"`boomerang`"+`) and by every service binary.
The defaults listen on loopback only; the containers of docker-compose.yml listen on all interfaces.`)

// The process's variables.
var (
	GRPCAddr = Vars.String("BOOMERANG_GRPC_ADDR", "127.0.0.1:7443",
		"gRPC listen address: every API of the process, health and reflection. `:7443` listens on all interfaces.")
	HTTPAddr = Vars.String("BOOMERANG_HTTP_ADDR", "127.0.0.1:7480",
		"HTTP listen address: `/metrics` (Prometheus), `/healthz`, and `/debug/pprof/` with `BOOMERANG_PPROF`.")
	NATSURL = Vars.String("NATS_URL", "",
		"External NATS server. Unset, the runner starts an embedded one; a service binary requires it. A URL not on this machine without credentials is refused.")
	APITokens = Vars.String("BOOMERANG_API_TOKENS", "",
		"`token:scope,scope;token2:admin`: API tokens of at least 16 characters and their scopes (`ingest:write`, `ingest:read`, `ledger:read`, `ledger:write`, `segmentation:read`, `feedback:read`, `feedback:write`, `feedback:recovery`, `customers:read`, `admin` for everything). Kept only as SHA-256 digests. The runner generates an admin token in `data/admin.token` when unset; a service binary requires it.")
	TLSCertFile = Vars.String("BOOMERANG_TLS_CERT_FILE", "", "PEM certificate: with the key, the gRPC port serves TLS.")
	TLSKeyFile  = Vars.String("BOOMERANG_TLS_KEY_FILE", "", "PEM private key of the certificate.")
	LogLevel    = Vars.String("BOOMERANG_LOG_LEVEL", "info",
		"`debug`, `info`, `warn` or `error`. Logs are JSON lines on stderr, with `trace_id` and `span_id` where a trace is open.")
	OTLPEndpoint = Vars.String("OTEL_EXPORTER_OTLP_ENDPOINT", "", "`host:port` of an OTLP/gRPC collector for traces; unset, no traces leave the process.")
	OTLPInsecure = Vars.Bool("OTEL_EXPORTER_OTLP_INSECURE", true, "Send OTLP without TLS.")
	Pprof        = Vars.Bool("BOOMERANG_PPROF", false,
		"Serve Go's profiles at `/debug/pprof/` on the HTTP port, to requests bearing the admin token.")
	OutboxStaleAfter = Vars.Duration("BOOMERANG_OUTBOX_STALE_AFTER", DefaultOutboxStaleAfter, time.Second, config.Forever,
		"`/healthz` reports a service `degraded` (HTTP 503) when its oldest unpublished outbox message is older.")
	NATSUser = Vars.String("NATS_USER", "",
		"Service binaries: the bus user to sign in as (`NATS_<SERVICE>_USER` comes first). Without any, the user is the service's own (`ingest`, `ledger`, `segmentation`, `feedback`) when its password is given.")
	NATSPassword   = Vars.String("NATS_PASSWORD", "", "Service binaries: the password of `NATS_USER`.")
	NATSCredsFile  = Vars.String("NATS_CREDS", "", "Service binaries: a NATS credentials file (JWT and nkey seed) instead of a user and password.")
	NATSInbox      = Vars.String("NATS_INBOX_PREFIX", "", "Service binaries: the inbox prefix for replies; default `_INBOX.<user>`, the only inbox a user may read.")
	NATSUserOf     = Vars.Family("NATS_<SERVICE>_USER", "<SERVICE>", "Service binaries: the bus user of one service, before `NATS_USER` (`NATS_LEDGER_USER`).")
	NATSCredsOf    = Vars.Family("NATS_<SERVICE>_CREDS", "<SERVICE>", "Service binaries: a credentials file of one service, before `NATS_CREDS`.")
	NATSPasswordOf = Vars.Family("NATS_<USER>_PASSWORD", "<USER>",
		"Password of bus user `shop`, `admin`, `ingest`, `ledger`, `segmentation` or `feedback` (at least 16 characters). The runner generates each in `data/nats-<user>.password` when unset and requires `NATS_SHOP_PASSWORD` on a non-loopback `BOOMERANG_EMBEDDED_NATS_ADDR`. A service binary given only its own `NATS_<SERVICE>_PASSWORD` signs in as that user.")
)

// ServiceVars are the variables that several services read and must agree on.
var ServiceVars = config.NewSet("Shared by the services", 1, "Read by each service that needs them; give every service the same values.")

// The services' shared variables.
var (
	BaseCurrency = ServiceVars.String("BOOMERANG_BASE_CURRENCY", "USD",
		"The seller's base currency (ISO 4217), in which points are earned and values reported. `make run` sets `EUR`.")
	FXRatesFile = ServiceVars.String("BOOMERANG_FX_RATES_FILE", "",
		"Dated rate table, CSV `date,currency,rate`. Without it only base-currency orders are accepted. `make run` sets `deploy/fx-rates.csv`.")
	IdentitySecret = ServiceVars.String("BOOMERANG_IDENTITY_SECRET", "",
		"HMAC key of the identity hashes, at least 32 bytes (hex accepted: `openssl rand -hex 32`). Changing it splits every customer in two. The runner generates it in `data/identity.key` when unset; order-ingest requires it.")
	StreamReplicas = ServiceVars.Int("BOOMERANG_STREAM_REPLICAS", 1, 1, 5, "JetStream replicas of the streams a service creates.")
	OrdersMaxAge   = ServiceVars.Duration("BOOMERANG_ORDERS_MAX_AGE", 0, 0, config.Forever,
		"Retention (replay window) of the ORDERS stream; `0` keeps every event.")
	FeedbackEventsMaxAge = ServiceVars.Duration("FEEDBACK_EVENTS_MAX_AGE", 0, 0, config.Forever,
		"Retention of the FEEDBACK stream (agony detected, recovery resolved); `0` keeps every event. Read by feedback, which writes the stream, and by segmentation, which creates it when it starts first.")
	DeadLetterMaxAge = ServiceVars.Duration("BOOMERANG_DEADLETTER_MAX_AGE", 30*24*time.Hour, 0, config.Forever,
		"Retention of the DEADLETTER stream; `0` keeps every dead letter.")
)

// ReadLogLevel reads BOOMERANG_LOG_LEVEL.
func ReadLogLevel(r *config.Reader) slog.Level {
	var level slog.Level
	if err := level.UnmarshalText([]byte(LogLevel.Read(r))); err != nil {
		r.Fail(LogLevel.Name, "want debug, info, warn or error")
	}
	return level
}
