// Package streams is the one list of Boomerang's JetStream streams: each
// stream's name, subjects, retention and description, the service that
// owns it and the services that use it, and the one way a service sets
// them up (Ensure).
//
// A stream has exactly one owner, the service that writes it (or, for an
// intake stream, consumes what shops publish into it, and for DEADLETTER,
// order-ingest). The owner creates the stream and, whenever it starts,
// brings its configuration up to date. A service that uses a stream it
// does not own, to make its consumer on it or to write dead letters into
// it, creates the stream when it is missing, with the same configuration,
// and otherwise leaves it as it is: so the services start in any order,
// also after an upgrade that changes a stream's configuration, and only
// the owner needs the right to change it. A reader makes only its own
// consumer. busauth grants the bus permissions from this list.
package streams

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/feedbackbus"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
)

// The streams no package in pkg names otherwise (ORDERS and DEADLETTER
// are orderbus's, FEEDBACK feedbackbus's), with their subject prefixes.
const (
	// Ingest captures the orders shops publish, so nothing is lost while
	// order-ingest is down.
	Ingest = "INGEST"
	// IngestPrefix + <source> is where a shop publishes its orders.
	IngestPrefix = "boomerang.ingest.orders."
	// Ledger holds the ledger's events.
	Ledger = "LEDGER"
	// LedgerPrefix + <event>.<customer_id> is a ledger event's subject.
	LedgerPrefix = "boomerang.ledger.v1."
	// Segment holds segmentation's events.
	Segment = "SEGMENT"
	// SegmentPrefix + <event>.<customer_id> is a segmentation event's
	// subject.
	SegmentPrefix = "boomerang.segmentation.v1."
	// FeedbackIn captures the feedback intake published on the bus.
	FeedbackIn = "FEEDBACK_IN"
	// FeedbackInPrefix + <kind>.<source> is where shops, survey tools and
	// help desks publish feedback.
	FeedbackInPrefix = "boomerang.feedback.in."
)

// A Stream is one stream as every service sets it up. Services are named
// by their bus users (busauth).
type Stream struct {
	Name     string
	Subjects []string
	// Owner is the one service that may change the stream's configuration.
	Owner string
	// Users are the other services that need the stream at start-up; they
	// create it when missing and never change it.
	Users []string
	// MaxAgeVar names the configuration variable of the stream's retention
	// (0 keeps every message); each service that ensures the stream reads
	// it and passes its value in Settings.MaxAge.
	MaxAgeVar   string
	Description string
}

// All are the streams, owner by owner.
func All() []Stream {
	// Every service but order-ingest consumes ORDERS and writes dead letters.
	others := []string{"ledger", "segmentation", "feedback"}
	return []Stream{
		{Name: Ingest, Subjects: []string{IngestPrefix + ">"}, Owner: "ingest", MaxAgeVar: "INGEST_INPUT_MAX_AGE",
			Description: "Order events as shops publish them"},
		{Name: orderbus.Stream, Subjects: []string{orderbus.Prefix + ">"}, Owner: "ingest", Users: others, MaxAgeVar: "BOOMERANG_ORDERS_MAX_AGE",
			Description: "Canonical order events, per customer subject"},
		{Name: orderbus.DeadLetterStream, Subjects: []string{orderbus.DeadLetterRoot + ">"}, Owner: "ingest", Users: others,
			MaxAgeVar: "BOOMERANG_DEADLETTER_MAX_AGE", Description: "Messages that could not be accepted, with the reason in their headers"},
		{Name: Ledger, Subjects: []string{LedgerPrefix + ">"}, Owner: "ledger", MaxAgeVar: "LEDGER_EVENTS_MAX_AGE",
			Description: "Points earned, redeemed, reversed, expired, expiring soon; tier changes"},
		{Name: Segment, Subjects: []string{SegmentPrefix + ">"}, Owner: "segmentation", MaxAgeVar: "SEGMENTATION_EVENTS_MAX_AGE",
			Description: "Segmentation events (segment and flag changes), per customer subject"},
		{Name: feedbackbus.Stream, Subjects: []string{feedbackbus.Prefix + ">"}, Owner: "feedback", Users: []string{"segmentation"},
			MaxAgeVar: "FEEDBACK_EVENTS_MAX_AGE", Description: "Agony detected and recovery resolved, per customer subject"},
		{Name: FeedbackIn, Subjects: []string{FeedbackInPrefix + ">"}, Owner: "feedback", MaxAgeVar: "FEEDBACK_IN_MAX_AGE",
			Description: "Survey responses, reviews, review responses and ticket events published for the feedback service"},
	}
}

// Lookup is the stream named name.
func Lookup(name string) (Stream, bool) {
	i := slices.IndexFunc(All(), func(s Stream) bool { return s.Name == name })
	if i < 0 {
		return Stream{}, false
	}
	return All()[i], true
}

// Of are the streams service owns and those it uses, in the order of All.
func Of(service string) (owns, uses []string) {
	for _, s := range All() {
		switch {
		case s.Owner == service:
			owns = append(owns, s.Name)
		case slices.Contains(s.Users, service):
			uses = append(uses, s.Name)
		}
	}
	return owns, uses
}

// Config is the stream's configuration with replicas and maxAge from
// configuration. Every stream is on file storage and drops a message whose
// id it stored in the last natsx.DuplicateWindow.
func (s Stream) Config(replicas int, maxAge time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: s.Name, Subjects: s.Subjects, Storage: jetstream.FileStorage, MaxAge: maxAge,
		Duplicates: natsx.DuplicateWindow, Replicas: max(replicas, 1), Description: s.Description,
	}
}

// Settings are what a service's configuration says of the streams it
// ensures.
type Settings struct {
	// Replicas is BOOMERANG_STREAM_REPLICAS.
	Replicas int
	// MaxAge is the retention of each stream the service ensures, by name,
	// read from the stream's MaxAgeVar.
	MaxAge map[string]time.Duration
}

// Ensure sets up for service the streams named in s.MaxAge, in the order
// of All: it creates or updates those it owns (natsx.EnsureStream) and
// creates the others when missing (natsx.EnsureStreamExists). A stream
// the service neither owns nor uses is an error, before any is touched.
func Ensure(ctx context.Context, js jetstream.JetStream, service string, s Settings) error {
	for name := range s.MaxAge {
		st, ok := Lookup(name)
		if !ok {
			return fmt.Errorf("stream %s: not one of Boomerang's", name)
		}
		if st.Owner != service && !slices.Contains(st.Users, service) {
			return fmt.Errorf("stream %s: %s neither owns nor uses it", name, service)
		}
	}
	for _, st := range All() {
		maxAge, ok := s.MaxAge[st.Name]
		if !ok {
			continue
		}
		ensure := natsx.EnsureStreamExists
		if st.Owner == service {
			ensure = natsx.EnsureStream
		}
		if _, err := ensure(ctx, js, st.Config(s.Replicas, maxAge)); err != nil {
			return err
		}
	}
	return nil
}
