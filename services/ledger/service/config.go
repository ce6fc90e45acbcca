package service

import (
	"strings"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
)

// Vars are points-ledger's own variables; it reads some of
// host.ServiceVars too.
var Vars = config.NewSet("points-ledger", 11, "Read by points-ledger, with `BOOMERANG_BASE_CURRENCY`, `BOOMERANG_FX_RATES_FILE` (for `QuoteOrder`) and the stream settings shared by the services.")

// The service's variables.
var (
	DatabaseURL     = Vars.String("LEDGER_DATABASE_URL", "sqlite:data/ledger.db", "`postgres://user:pass@host/db` or `sqlite:PATH`. The default is the single process's; a service binary requires the variable.")
	ProgrammeFile   = Vars.String("LEDGER_PROGRAMME_FILE", "", "The programme rules (YAML, see `deploy/programme.yaml`); unset, one point per unit of base currency. `make run` sets `deploy/programme.yaml`.")
	programmeReload = Vars.Duration("LEDGER_PROGRAMME_RELOAD", 30*time.Second, 0, config.Forever,
		"How often the programme file is checked for changes; `0` never.")
	batchSize = Vars.Int("LEDGER_BATCH_SIZE", 2048, 1, 10000,
		"Most order events applied in one transaction. Batches take what is waiting, so they are this large only under load (see docs/benchmarks.md for the sizes measured).")
	ackWait = Vars.Duration("LEDGER_ACK_WAIT", 30*time.Second, time.Second, time.Hour,
		"The consumer's lease on a message; after a crash, messages in flight come back when it runs out.")
	laterDelay = Vars.Duration("LEDGER_LATER_DELAY", 2*time.Second, 10*time.Millisecond, time.Hour,
		"How long an event waiting for an earlier event of its order is put off.")
	waitForOrder = Vars.Duration("LEDGER_WAIT_FOR_ORDER", 10*time.Minute, 10*time.Millisecond, config.Forever,
		"How long an event may wait in all for an earlier event of its order before it is dead-lettered (`order_history_gap`); at least `LEDGER_LATER_DELAY`.")
	maxAttempts = Vars.Int("LEDGER_MAX_ATTEMPTS", 5, 1, 1000,
		"How often one order event may fail while the database answers before it is dead-lettered (`processing_failed`).")
	sweepInterval = Vars.Duration("LEDGER_SWEEP_INTERVAL", time.Hour, time.Second, 24*time.Hour,
		"How often points expire, expiry warnings and birthday bonuses go out and tiers are reviewed.")
	eventsMaxAge = Vars.Duration("LEDGER_EVENTS_MAX_AGE", 0, 0, config.Forever, "Retention of the LEDGER stream; `0` keeps every event.")
)

// LoadConfig reads the service's variables and reports every problem at
// once.
func LoadConfig(src config.Source) (Config, error) {
	r := config.NewReader(src)
	c := Config{
		DatabaseURL:     DatabaseURL.Read(r),
		BaseCurrency:    strings.ToUpper(host.BaseCurrency.Read(r)),
		FXRatesFile:     host.FXRatesFile.Read(r),
		ProgrammeFile:   ProgrammeFile.Read(r),
		ProgrammeReload: programmeReload.Read(r),
		BatchSize:       batchSize.Read(r),
		AckWait:         ackWait.Read(r),
		LaterDelay:      laterDelay.Read(r),
		WaitForOrder:    waitForOrder.Read(r),
		MaxAttempts:     maxAttempts.Read(r),
		SweepInterval:   sweepInterval.Read(r),
		EventsMaxAge:    eventsMaxAge.Read(r),
		OrdersMaxAge:    host.OrdersMaxAge.Read(r),
		DeadLetterAge:   host.DeadLetterMaxAge.Read(r),
		StreamReplicas:  host.StreamReplicas.Read(r),
	}
	c.check(r)
	return c, r.Err()
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
	if c.WaitForOrder < c.LaterDelay {
		r.Fail(waitForOrder.Name, "%v, want at least %s", c.WaitForOrder, laterDelay.Name)
	}
}
