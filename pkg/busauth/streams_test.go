package busauth_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
)

// TestStreamsAgree: the owners and users of the streams are services with
// a bus user, every stream is written by its owner or, for intake, by the
// shops, and every event or dead letter a service may publish is stored
// in a stream.
func TestStreamsAgree(t *testing.T) {
	services := []string{busauth.Ingest, busauth.Ledger, busauth.Segmentation, busauth.Feedback}
	shop, _, _ := busauth.Permissions(busauth.Shop)
	var all []string
	for _, st := range streams.All() {
		all = append(all, st.Subjects...)
		for _, s := range append([]string{st.Owner}, st.Users...) {
			if !slices.Contains(services, s) {
				t.Errorf("%s: %q is not a service's bus user", st.Name, s)
			}
		}
		owner, _, _ := busauth.Permissions(st.Owner)
		if !collide(owner, st.Subjects) && !collide(shop, st.Subjects) {
			t.Errorf("%s: neither its owner %s nor the shops may publish to %v", st.Name, st.Owner, st.Subjects)
		}
	}
	for _, s := range append(services, busauth.Shop) {
		pub, _, _ := busauth.Permissions(s)
		for _, p := range pub {
			if !strings.HasPrefix(p, "$JS.") && !collide([]string{p}, all) {
				t.Errorf("%s may publish to %s, which no stream stores", s, p)
			}
		}
	}
}

// collide reports whether a subject of a and one of b match a message in
// common.
func collide(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if server.SubjectsCollide(x, y) {
				return true
			}
		}
	}
	return false
}
