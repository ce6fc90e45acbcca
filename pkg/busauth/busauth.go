// Package busauth says who may do what on Boomerang's NATS: the users
// (shops, each service, the operator) and the subjects each may publish
// and subscribe to. The single-process runner's embedded server takes its
// users from here; deploy/nats/nats.conf, the distributed deployment's
// server configuration, states the same permissions (a test compares
// them).
//
// A shop may only publish to the intake subjects. A service may publish
// only its own events and dead letters (and order-ingest, which captures
// webhooks, the order intake), and reach JetStream's API only
// for the streams and the durable consumers it uses: it may create the
// streams it ensures at start-up, read their information, and
// create, read, pull from and acknowledge its own consumers; it may not
// purge, delete or list streams, nor read another service's consumer.
// A stream has one owner, the only service that may change its
// configuration, and the services that use it may only create it: who
// owns and who uses which stream comes from pkg/streams.
// Every user receives replies on its own inbox only
// (natsx.InboxPrefix), so no one reads what is pulled for another.
package busauth

import (
	"slices"

	"github.com/boomerang-loyalty/boomerang/pkg/feedbackbus"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
)

// The users. A service's user is named after the service.
const (
	Shop         = "shop"
	Admin        = "admin"
	Ingest       = "ingest"
	Ledger       = "ledger"
	Segmentation = "segmentation"
	Feedback     = "feedback"
)

// Names are the users in the order they are listed to people.
func Names() []string { return []string{Shop, Admin, Ingest, Ledger, Segmentation, Feedback} }

// Intake subjects: where shops, survey tools and help desks publish.
const (
	// OrderIntake is boomerang.ingest.orders.<source>, captured by INGEST.
	OrderIntake = streams.IngestPrefix + "*"
	// FeedbackIntake is boomerang.feedback.in.<kind>.<source>, captured
	// by FEEDBACK_IN.
	FeedbackIntake = streams.FeedbackInPrefix + "*.*"
)

// A durable consumer a service reads. Consumer names live in the services'
// internal packages; the platform tests start every service with these
// permissions, so a renamed consumer fails them.
type consumer struct{ stream, name string }

// service is what one service does on the bus besides setting up its
// streams (streams.Of).
type service struct {
	publish   []string   // its events and dead letters
	consumers []consumer // its durable consumers
}

func services() map[string]service {
	return map[string]service{
		Ingest: {
			// The intake too: the HTTP intake captures webhooks there.
			publish:   []string{orderbus.Prefix + ">", orderbus.DeadLetterRoot + "ingest.>", streams.IngestPrefix + ">"},
			consumers: []consumer{{streams.Ingest, "order-ingest"}},
		},
		Ledger: {
			publish:   []string{streams.LedgerPrefix + ">", orderbus.DeadLetterRoot + "ledger.>"},
			consumers: []consumer{{orderbus.Stream, "points-ledger"}},
		},
		Segmentation: {
			publish:   []string{streams.SegmentPrefix + ">", orderbus.DeadLetterRoot + "segmentation.>"},
			consumers: []consumer{{orderbus.Stream, "segmentation"}, {feedbackbus.Stream, "segmentation-feedback"}},
		},
		Feedback: {
			publish:   []string{feedbackbus.Prefix + ">", orderbus.DeadLetterRoot + "feedback.>"},
			consumers: []consumer{{streams.FeedbackIn, "feedback-intake"}},
		},
	}
}

// Permissions are the subjects a user may publish and subscribe to; ok is
// false for a name that is none of Names.
func Permissions(name string) (publish, subscribe []string, ok bool) {
	inbox := []string{natsx.InboxPrefix(name) + ".>"}
	switch name {
	case Admin:
		// The operator: boomctl events follow, purges of a customer's
		// events, stream maintenance.
		return []string{">"}, []string{">"}, true
	case Shop:
		return []string{OrderIntake, FeedbackIntake}, inbox, true
	}
	s, ok := services()[name]
	if !ok {
		return nil, nil, false
	}
	publish = slices.Clone(s.publish)
	owns, uses := streams.Of(name)
	for _, st := range owns {
		publish = append(publish, "$JS.API.STREAM.CREATE."+st, "$JS.API.STREAM.UPDATE."+st, "$JS.API.STREAM.INFO."+st)
	}
	for _, st := range uses {
		publish = append(publish, "$JS.API.STREAM.CREATE."+st, "$JS.API.STREAM.INFO."+st)
	}
	for _, c := range s.consumers {
		publish = append(publish,
			// With one filter subject the client puts it after the name.
			"$JS.API.CONSUMER.CREATE."+c.stream+"."+c.name,
			"$JS.API.CONSUMER.CREATE."+c.stream+"."+c.name+".>",
			"$JS.API.CONSUMER.INFO."+c.stream+"."+c.name,
			"$JS.API.CONSUMER.MSG.NEXT."+c.stream+"."+c.name,
			"$JS.ACK."+c.stream+"."+c.name+".>")
	}
	return publish, inbox, true
}

// User is the named user with its password and permissions.
func User(name, password string) (natsx.User, bool) {
	pub, sub, ok := Permissions(name)
	return natsx.User{Name: name, Password: password, Publish: pub, Subscribe: sub}, ok
}
