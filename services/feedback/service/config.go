package service

import (
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
)

// Vars are feedback's own variables; it reads some of host.ServiceVars too.
var Vars = config.NewSet("feedback", 13, "Read by feedback, with the stream settings shared by the services.")

// The service's variables.
var (
	DatabaseURL = Vars.String("FEEDBACK_DATABASE_URL", "sqlite:data/feedback.db", "`postgres://user:pass@host/db` or `sqlite:PATH`. The default is the single process's; a service binary requires the variable.")
	segAddr     = Vars.String("FEEDBACK_SEGMENTATION_ADDR", "",
		"Segmentation's gRPC address, for customers' segments and values. Unset in the single process, which runs both, the runner dials its own gRPC port with a token it makes at start-up; a feedback binary without it keeps no segment.")
	segToken       = Vars.String("FEEDBACK_SEGMENTATION_TOKEN", "", "A token with `segmentation:read`; required with `FEEDBACK_SEGMENTATION_ADDR`.")
	segTLS         = Vars.Bool("FEEDBACK_SEGMENTATION_TLS", false, "Dial segmentation with TLS.")
	profileTimeout = Vars.Duration("FEEDBACK_PROFILE_TIMEOUT", 2*time.Second, 10*time.Millisecond, time.Minute,
		"Deadline of one batch's segmentation look-ups.")
	firstResponse = Vars.Duration("FEEDBACK_FIRST_RESPONSE_THRESHOLD", 6*time.Hour, time.Second, 30*24*time.Hour,
		"A ticket waiting longer for its first response puts the customer in agony.")
	sweepInterval = Vars.Duration("FEEDBACK_SWEEP_INTERVAL", 5*time.Minute, 100*time.Millisecond, 24*time.Hour,
		"How often unanswered tickets past the threshold are looked for.")
	fillInterval = Vars.Duration("FEEDBACK_FILL_INTERVAL", time.Minute, 100*time.Millisecond, 24*time.Hour,
		"How often segmentation is asked again about customers it could not tell.")
	fillGiveUp = Vars.Duration("FEEDBACK_FILL_GIVE_UP", 24*time.Hour, 100*time.Millisecond, config.Forever,
		"After this, a customer segmentation does not know keeps no segment; at least `FEEDBACK_FILL_INTERVAL`.")
	valueMaxAge = Vars.Duration("FEEDBACK_VALUE_MAX_AGE", time.Hour, 100*time.Millisecond, 30*24*time.Hour,
		"The value of a customer with an open recovery case is asked again when older than this; at least `FEEDBACK_FILL_INTERVAL`.")
	claimTTL = Vars.Duration("FEEDBACK_CLAIM_TTL", 24*time.Hour, 0, 365*24*time.Hour,
		"A recovery case claimed this long ago may be taken over by another agent; `0`: claims never lapse, else at least 1m.")
	scoreTimeZones = Vars.String("FEEDBACK_SCORE_TIME_ZONES", "UTC",
		"Comma-separated IANA time zones (1 to 8) with a rollup by local day, in which scores are fast.")
	batchSize = Vars.Int("FEEDBACK_BATCH_SIZE", 256, 1, 10000, "Most intake messages stored in one transaction.")
	ackWait   = Vars.Duration("FEEDBACK_ACK_WAIT", 30*time.Second, time.Second, time.Hour,
		"The consumer's lease on a message; after a crash, messages in flight come back when it runs out.")
	maxAttempts = Vars.Int("FEEDBACK_MAX_ATTEMPTS", 5, 1, 1000,
		"A failed batch is stored message by message; one that fails this often while the database answers is dead-lettered (`processing_failed`).")
	inMaxAge = Vars.Duration("FEEDBACK_IN_MAX_AGE", 7*24*time.Hour, 0, config.Forever,
		"Retention of the FEEDBACK_IN stream (the intake is in SQL once consumed); `0` keeps all.")
)

// LoadConfig reads the service's variables and reports every problem at
// once.
func LoadConfig(src config.Source) (Config, error) {
	r := config.NewReader(src)
	c := Config{
		DatabaseURL:            DatabaseURL.Read(r),
		SegmentationAddr:       segAddr.Read(r),
		SegmentationToken:      segToken.Read(r),
		SegmentationTLS:        segTLS.Read(r),
		ProfileTimeout:         profileTimeout.Read(r),
		FirstResponseThreshold: firstResponse.Read(r),
		SweepInterval:          sweepInterval.Read(r),
		FillInterval:           fillInterval.Read(r),
		FillGiveUp:             fillGiveUp.Read(r),
		ValueMaxAge:            valueMaxAge.Read(r),
		ClaimTTL:               claimTTL.Read(r),
		ScoreTimeZones:         splitList(scoreTimeZones.Read(r)),
		BatchSize:              batchSize.Read(r),
		AckWait:                ackWait.Read(r),
		MaxAttempts:            maxAttempts.Read(r),
		EventsMaxAge:           host.FeedbackEventsMaxAge.Read(r),
		InMaxAge:               inMaxAge.Read(r),
		DeadLetterAge:          host.DeadLetterMaxAge.Read(r),
		OrdersMaxAge:           host.OrdersMaxAge.Read(r),
		StreamReplicas:         host.StreamReplicas.Read(r),
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
	if c.SegmentationAddr != "" && c.SegmentationToken == "" {
		r.Fail(segToken.Name, "required with %s (a token with segmentation:read)", segAddr.Name)
	}
	if c.FillGiveUp < c.FillInterval {
		r.Fail(fillGiveUp.Name, "%v, want at least %s", c.FillGiveUp, fillInterval.Name)
	}
	if c.ValueMaxAge < c.FillInterval {
		r.Fail(valueMaxAge.Name, "%v, want at least %s", c.ValueMaxAge, fillInterval.Name)
	}
	if c.ClaimTTL != 0 && c.ClaimTTL < time.Minute {
		r.Fail(claimTTL.Name, "%v, want 0 (claims never lapse) or 1m..8760h", c.ClaimTTL)
	}
	if len(c.ScoreTimeZones) == 0 || len(c.ScoreTimeZones) > 8 {
		r.Fail(scoreTimeZones.Name, "%d zones, want 1..8", len(c.ScoreTimeZones))
	}
	for _, z := range c.ScoreTimeZones {
		if _, err := time.LoadLocation(z); err != nil {
			r.Fail(scoreTimeZones.Name, "%q is not an IANA time zone", z)
		}
	}
}
