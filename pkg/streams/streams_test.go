package streams_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/feedbackbus"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// TestRegistry: every stream has one name, one owner that is not also a
// user of it, subjects no other stream captures, and a retention variable.
func TestRegistry(t *testing.T) {
	all := streams.All()
	for i, st := range all {
		if st.Name == "" || st.Owner == "" || st.MaxAgeVar == "" || st.Description == "" || len(st.Subjects) == 0 {
			t.Errorf("%+v: a field is empty", st)
		}
		for _, u := range st.Users {
			if u == st.Owner {
				t.Errorf("%s: owner %s listed as a user too", st.Name, u)
			}
		}
		for _, other := range all[i+1:] {
			if other.Name == st.Name {
				t.Errorf("stream %s listed twice", st.Name)
			}
			for _, a := range st.Subjects {
				for _, b := range other.Subjects {
					if server.SubjectsCollide(a, b) {
						t.Errorf("%s's %s and %s's %s overlap", st.Name, a, other.Name, b)
					}
				}
			}
		}
	}
	// The shared retention variables are pkg/host's.
	for name, v := range map[string]string{orderbus.Stream: host.OrdersMaxAge.Name, orderbus.DeadLetterStream: host.DeadLetterMaxAge.Name,
		feedbackbus.Stream: host.FeedbackEventsMaxAge.Name} {
		if st, _ := streams.Lookup(name); st.MaxAgeVar != v {
			t.Errorf("%s: retention from %q, want %q", name, st.MaxAgeVar, v)
		}
	}
}

// TestEnsure: the owner creates a stream and brings it up to date; a user
// creates it when missing and leaves it otherwise; a service that neither
// owns nor uses a stream may not ensure it.
func TestEnsure(t *testing.T) {
	_, url := testkit.NATS(t)
	_, js := testkit.JetStream(t, url)
	ctx := context.Background()
	maxAge := func(name string) time.Duration {
		t.Helper()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.MaxAge
	}
	ledger := streams.Settings{MaxAge: map[string]time.Duration{orderbus.Stream: time.Hour, streams.Ledger: time.Hour}}
	if err := streams.Ensure(ctx, js, "ledger", ledger); err != nil {
		t.Fatal(err)
	}
	if got := maxAge(orderbus.Stream); got != time.Hour {
		t.Errorf("ORDERS created by a user with max age %v, want %v", got, time.Hour)
	}
	ledger.MaxAge = map[string]time.Duration{orderbus.Stream: 2 * time.Hour, streams.Ledger: 2 * time.Hour}
	if err := streams.Ensure(ctx, js, "ledger", ledger); err != nil {
		t.Fatal(err)
	}
	if got := maxAge(orderbus.Stream); got != time.Hour {
		t.Errorf("ORDERS changed by a user to max age %v, want %v", got, time.Hour)
	}
	if got := maxAge(streams.Ledger); got != 2*time.Hour {
		t.Errorf("LEDGER not updated by its owner: max age %v, want %v", got, 2*time.Hour)
	}
	if err := streams.Ensure(ctx, js, "ingest", streams.Settings{MaxAge: map[string]time.Duration{orderbus.Stream: 2 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if got := maxAge(orderbus.Stream); got != 2*time.Hour {
		t.Errorf("ORDERS not updated by its owner: max age %v, want %v", got, 2*time.Hour)
	}
	for _, name := range []string{streams.Segment, "NOPE"} {
		if err := streams.Ensure(ctx, js, "ledger", streams.Settings{MaxAge: map[string]time.Duration{name: 0}}); err == nil {
			t.Errorf("ledger ensured %s", name)
		}
		if _, err := js.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
}
