package service

import (
	"strings"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/money"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Vars are segmentation's own variables; it reads some of host.ServiceVars
// too.
var Vars = config.NewSet("segmentation", 12, "Read by segmentation, with `BOOMERANG_BASE_CURRENCY` (the currency of every value it reports) and the stream settings shared by the services.")

var flagDefaults = segment.DefaultFlagRules

// The service's variables.
var (
	DatabaseURL = Vars.String("SEGMENTATION_DATABASE_URL", "sqlite:data/segmentation.db", "`postgres://user:pass@host/db` or `sqlite:PATH`. The default is the single process's; a service binary requires the variable.")
	redisURL    = Vars.String("SEGMENTATION_REDIS_URL", "", "`redis://host:port/db` (or `rediss://`) of the hot store; unset, `REDIS_URL`, else an in-process hot store.")
	redisURLAny = Vars.String("REDIS_URL", "", "The hot store when `SEGMENTATION_REDIS_URL` is unset.")
	redisPrefix = Vars.String("SEGMENTATION_REDIS_PREFIX", "boomerang:seg:", "Prefix of every Redis key.")
	batchSize   = Vars.Int("SEGMENTATION_BATCH_SIZE", 512, 1, 10000, "Most order events applied in one transaction.")
	ackWait     = Vars.Duration("SEGMENTATION_ACK_WAIT", 30*time.Second, time.Second, time.Hour,
		"The consumer's lease on a message; after a crash, messages in flight come back when it runs out.")
	laterDelay = Vars.Duration("SEGMENTATION_LATER_DELAY", 2*time.Second, 10*time.Millisecond, time.Hour,
		"When an event put off for its order's earlier event comes back.")
	waitForOrder = Vars.Duration("SEGMENTATION_WAIT_FOR_ORDER", 10*time.Minute, 10*time.Millisecond, config.Forever,
		"How long an event waits for its order's earlier event before it is applied without it (logged, counted in `boomerang_segmentation_order_gaps_total`); at least `SEGMENTATION_LATER_DELAY`.")
	scoreInterval = Vars.Duration("SEGMENTATION_SCORE_INTERVAL", time.Hour, time.Second, config.Forever,
		"How often every customer is scored and the models refitted.")
	minScoreInterval = Vars.Duration("SEGMENTATION_MIN_SCORE_INTERVAL", 10*time.Second, 0, config.Forever,
		"Least time between runs started early because the customer base grew by a tenth; at most `SEGMENTATION_SCORE_INTERVAL`.")
	horizonDays  = Vars.Int("SEGMENTATION_HORIZON_DAYS", 365, 1, 3650, "Horizon of expected purchases and CLV, in days.")
	discountRate = Vars.Float("SEGMENTATION_ANNUAL_DISCOUNT_RATE", 0.10, 0, 1, "Yearly discount rate of the CLV (applied in monthly steps).")
	vipShare     = Vars.Float("SEGMENTATION_VIP_SHARE", flagDefaults.VIPShare, 0, 1, "Share of customers, ranked by CLV, flagged VIP.")
	priceShare   = Vars.Float("SEGMENTATION_PRICE_SENSITIVE_SHARE", flagDefaults.PriceSensitiveShare, 0.000001, 1,
		"Share of discounted orders from which a customer is price-sensitive.")
	priceMinOrders = Vars.Int("SEGMENTATION_PRICE_SENSITIVE_MIN_ORDERS", int(flagDefaults.PriceSensitiveMinOrders), 1, 1<<30,
		"Orders needed before a customer can be price-sensitive.")
	churnPAlive  = Vars.Float("SEGMENTATION_CHURN_P_ALIVE", flagDefaults.ChurnPAlive, 0, 1, "P(alive) below which a repeat customer is a churn risk.")
	newDays      = Vars.Int("SEGMENTATION_NEW_DAYS", flagDefaults.NewWithinDays, 0, 1<<30, "A customer whose first order is at most this many days old is new.")
	eventsMaxAge = Vars.Duration("SEGMENTATION_EVENTS_MAX_AGE", 30*24*time.Hour, 0, config.Forever,
		"Retention of the SEGMENT stream; `0` keeps every event.")
)

// LoadConfig reads the service's variables and reports every problem at
// once.
func LoadConfig(src config.Source) (Config, error) {
	r := config.NewReader(src)
	c := Config{
		DatabaseURL:      DatabaseURL.Read(r),
		RedisURL:         redisURL.Read(r),
		RedisPrefix:      redisPrefix.Read(r),
		BaseCurrency:     strings.ToUpper(host.BaseCurrency.Read(r)),
		BatchSize:        batchSize.Read(r),
		AckWait:          ackWait.Read(r),
		LaterDelay:       laterDelay.Read(r),
		WaitForOrder:     waitForOrder.Read(r),
		ScoreInterval:    scoreInterval.Read(r),
		MinScoreInterval: minScoreInterval.Read(r),
		HorizonDays:      horizonDays.Read(r),
		DiscountRate:     discountRate.Read(r),
		Flags: segment.FlagRules{
			VIPShare:                vipShare.Read(r),
			PriceSensitiveShare:     priceShare.Read(r),
			PriceSensitiveMinOrders: int64(priceMinOrders.Read(r)),
			ChurnPAlive:             churnPAlive.Read(r),
			NewWithinDays:           newDays.Read(r),
		},
		EventsMaxAge:     eventsMaxAge.Read(r),
		OrdersMaxAge:     host.OrdersMaxAge.Read(r),
		DeadLetterMaxAge: host.DeadLetterMaxAge.Read(r),
		FeedbackMaxAge:   host.FeedbackEventsMaxAge.Read(r),
		StreamReplicas:   host.StreamReplicas.Read(r),
	}
	if c.RedisURL == "" {
		c.RedisURL = redisURLAny.Read(r)
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
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		r.Fail(redisURL.Name, "want redis://… or rediss://…")
	}
	if c.RedisPrefix == "" {
		r.Fail(redisPrefix.Name, "required")
	}
	if !money.Known(c.BaseCurrency) {
		r.Fail(host.BaseCurrency.Name, "%q is not an ISO 4217 currency", c.BaseCurrency)
	}
	if c.WaitForOrder < c.LaterDelay {
		r.Fail(waitForOrder.Name, "%v, want at least %s", c.WaitForOrder, laterDelay.Name)
	}
	if c.MinScoreInterval > c.ScoreInterval {
		r.Fail(minScoreInterval.Name, "%v, want 0..%s", c.MinScoreInterval, scoreInterval.Name)
	}
}
