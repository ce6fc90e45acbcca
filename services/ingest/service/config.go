package service

import (
	"encoding/hex"
	"strings"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/webhook"
)

// Vars are order-ingest's own variables; it reads some of host.ServiceVars
// too.
var Vars = config.NewSet("order-ingest", 10, "Read by order-ingest, with `BOOMERANG_BASE_CURRENCY`, `BOOMERANG_FX_RATES_FILE`, `BOOMERANG_IDENTITY_SECRET` and the stream settings shared by the services.")

// The service's variables.
var (
	DatabaseURL = Vars.String("INGEST_DATABASE_URL", "sqlite:data/ingest.db", "`postgres://user:pass@host/db` or `sqlite:PATH`. The default is the single process's; a service binary requires the variable.")
	batchSize   = Vars.Int("INGEST_BATCH_SIZE", 256, 1, 10000, "Most input messages applied in one transaction.")
	maxPayload  = Vars.Int("INGEST_MAX_PAYLOAD_BYTES", 256<<10, 1024, 8<<20, "Largest accepted input message, in bytes.")
	maxAttempts = Vars.Int("INGEST_MAX_ATTEMPTS", 5, 1, 1000,
		"Tries of a message that fails on its own (while the database answers) before it is dead-lettered (`processing_failed`).")
	waitForOrder = Vars.Duration("INGEST_WAIT_FOR_ORDER", 10*time.Minute, 0, config.Forever,
		"How long a refund or cancellation waits for its order before it is dead-lettered.")
	laterDelay = Vars.Duration("INGEST_LATER_DELAY", 30*time.Second, 10*time.Millisecond, time.Hour,
		"How long a message put off (waiting for its order) waits before it comes back.")
	ackWait = Vars.Duration("INGEST_ACK_WAIT", 30*time.Second, time.Second, time.Hour,
		"The consumer's lease on a message; after a crash, messages in flight come back when it runs out.")
	inputMaxAge = Vars.Duration("INGEST_INPUT_MAX_AGE", 7*24*time.Hour, 0, config.Forever,
		"Retention of the INGEST stream (the raw input; `0` keeps all).")
	webhookAddr = Vars.String("INGEST_WEBHOOK_ADDR", "127.0.0.1:7490",
		"Address of the HTTP intake (`POST /webhooks/<platform>/<source>`); empty turns it off.")
	webhookSources = Vars.String("INGEST_WEBHOOK_SOURCES", "",
		"The sources that may send webhooks, a comma list of `source:platform` (`shop-eu:generic,northwind:shopify`); the platform is `generic`, `shopify` or `woocommerce`.")
	webhookSecret = Vars.Family("INGEST_WEBHOOK_SECRET_<SOURCE>", "<SOURCE>",
		"The secret that signs one webhook source's deliveries, at least 16 bytes, used as given; `<SOURCE>` is the source in upper case with `-` as `_` (`INGEST_WEBHOOK_SECRET_SHOP_EU`).")
	webhookTolerance = Vars.Duration("INGEST_WEBHOOK_TOLERANCE", 5*time.Minute, time.Second, 24*time.Hour,
		"How far a signed webhook's timestamp may be from now before it is refused as a replay.")
	ledgerAddr = Vars.String("INGEST_LEDGER_ADDR", "",
		"The points ledger's gRPC address, for the customer 360 read (`CustomerService`). Unset in the single process, which runs both, the runner dials its own gRPC port with a token it makes at start-up; an order-ingest binary without it reports the ledger unavailable in every read.")
	segmentationAddr = Vars.String("INGEST_SEGMENTATION_ADDR", "",
		"Segmentation's gRPC address, for the customer 360 read; unset as `INGEST_LEDGER_ADDR`.")
	feedbackAddr = Vars.String("INGEST_FEEDBACK_ADDR", "",
		"Feedback's gRPC address, for the customer 360 read; unset as `INGEST_LEDGER_ADDR`.")
	peerToken = Vars.String("INGEST_PEER_TOKEN", "",
		"A token with `ledger:read`, `segmentation:read` and `feedback:read`, sent to the services named by `INGEST_LEDGER_ADDR`, `INGEST_SEGMENTATION_ADDR` and `INGEST_FEEDBACK_ADDR`; required with any of them.")
	peerTLS     = Vars.Bool("INGEST_PEER_TLS", false, "Dial the ledger, segmentation and feedback with TLS.")
	peerTimeout = Vars.Duration("INGEST_PEER_TIMEOUT", 2*time.Second, 10*time.Millisecond, time.Minute,
		"Deadline of each service's answer to a customer 360 read; a service that does not answer in time is reported unavailable and the read answers with the rest.")
)

// minWebhookSecret is the shortest secret a webhook source may have.
const minWebhookSecret = 16

// WebhookSource is a shop that sends webhooks, from INGEST_WEBHOOK_SOURCES.
type WebhookSource struct {
	Name     string
	Platform string
	// Secret is never logged.
	Secret []byte
}

// webhookSecretVar is the variable of a source's secret.
func webhookSecretVar(source string) string {
	return webhookSecret.For(strings.ReplaceAll(source, "-", "_"))
}

// readWebhookSources reads INGEST_WEBHOOK_SOURCES and each source's
// secret; check validates them.
func readWebhookSources(r *config.Reader) []WebhookSource {
	var out []WebhookSource
	for entry := range strings.SplitSeq(webhookSources.Read(r), ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, platform, ok := strings.Cut(entry, ":")
		if !ok {
			r.Fail(webhookSources.Name, "%q is not source:platform", entry)
			continue
		}
		s := WebhookSource{Name: name, Platform: platform}
		if bus.ValidSource(name) {
			s.Secret = []byte(webhookSecret.Read(r, strings.ReplaceAll(name, "-", "_")))
		}
		out = append(out, s)
	}
	return out
}

// LoadConfig reads the service's variables and reports every problem at
// once.
func LoadConfig(src config.Source) (Config, error) {
	r := config.NewReader(src)
	c := Config{
		DatabaseURL:      DatabaseURL.Read(r),
		BaseCurrency:     strings.ToUpper(host.BaseCurrency.Read(r)),
		FXRatesFile:      host.FXRatesFile.Read(r),
		BatchSize:        batchSize.Read(r),
		MaxPayload:       maxPayload.Read(r),
		MaxAttempts:      maxAttempts.Read(r),
		WaitForOrder:     waitForOrder.Read(r),
		LaterDelay:       laterDelay.Read(r),
		AckWait:          ackWait.Read(r),
		InputMaxAge:      inputMaxAge.Read(r),
		OrdersMaxAge:     host.OrdersMaxAge.Read(r),
		DeadLetterMaxAge: host.DeadLetterMaxAge.Read(r),
		StreamReplicas:   host.StreamReplicas.Read(r),
		WebhookAddr:      webhookAddr.Read(r),
		WebhookSources:   readWebhookSources(r),
		WebhookTolerance: webhookTolerance.Read(r),
		LedgerAddr:       ledgerAddr.Read(r),
		SegmentationAddr: segmentationAddr.Read(r),
		FeedbackAddr:     feedbackAddr.Read(r),
		PeerToken:        peerToken.Read(r),
		PeerTLS:          peerTLS.Read(r),
		PeerTimeout:      peerTimeout.Read(r),
	}
	if s := host.IdentitySecret.Read(r); s != "" {
		c.IdentitySecret = decodeSecret(s)
	}
	c.check(r)
	return c, r.Err()
}

// decodeSecret accepts a hex string (as `openssl rand -hex 32` prints) or
// raw text.
func decodeSecret(s string) []byte {
	if b, err := hex.DecodeString(s); err == nil {
		return b
	}
	return []byte(s)
}

// Validate reports what the variables' declarations cannot: required
// values and the ones that depend on each other.
func (c Config) Validate() error { return config.Check(c.check) }

func (c Config) check(r *config.Reader) {
	if c.DatabaseURL == "" {
		r.Fail(DatabaseURL.Name, "required")
	}
	if !money.Known(c.BaseCurrency) {
		r.Fail(host.BaseCurrency.Name, "%q is not an ISO 4217 currency", c.BaseCurrency)
	}
	if len(c.IdentitySecret) < 32 {
		r.Fail(host.IdentitySecret.Name, "required, at least 32 bytes (e.g. `openssl rand -hex 32`)")
	}
	if (c.LedgerAddr != "" || c.SegmentationAddr != "" || c.FeedbackAddr != "") && c.PeerToken == "" {
		r.Fail(peerToken.Name, "required with %s, %s or %s (a token with ledger:read, segmentation:read and feedback:read)",
			ledgerAddr.Name, segmentationAddr.Name, feedbackAddr.Name)
	}
	seen := map[string]bool{}
	for _, s := range c.WebhookSources {
		switch {
		case !bus.ValidSource(s.Name):
			r.Fail(webhookSources.Name, "source %q: want lower-case letters, digits, - and _, at most 64", s.Name)
			continue
		case seen[webhookSecretVar(s.Name)]:
			r.Fail(webhookSources.Name, "source %q: listed twice (or as another source with _ for -)", s.Name)
		}
		seen[webhookSecretVar(s.Name)] = true
		if _, ok := webhook.Lookup(s.Platform); !ok {
			r.Fail(webhookSources.Name, "source %q: unknown platform %q (want %s)", s.Name, s.Platform, strings.Join(webhook.Names(), ", "))
		}
		if len(s.Secret) < minWebhookSecret {
			r.Fail(webhookSecretVar(s.Name), "required for webhook source %q, at least %d bytes (e.g. `openssl rand -hex 32`)", s.Name, minWebhookSecret)
		}
	}
}
