package bus_test

import (
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/bus"
	"github.com/boomerang-loyalty/boomerang/services/ledger/internal/ledger"
)

// TestProtoCarriesHistoric: every kind of ledger event a historic order
// can cause says so on the bus, and a live one does not.
func TestProtoCarriesHistoric(t *testing.T) {
	at := time.Date(2019, 3, 15, 10, 0, 0, 0, time.UTC)
	earned := &ledger.Entry{ID: "e:base", Kind: ledger.KindEarn, Points: 120}
	tests := []struct {
		name  string
		ev    ledger.Event
		token string
	}{
		{"earned", ledger.Event{Entry: earned, Breakdown: []ledger.Award{{Rule: "base", Points: 120}}}, bus.SubjectEarned},
		{"expired", ledger.Event{Entry: &ledger.Entry{ID: "expiry:e:base", Kind: ledger.KindExpiry, Points: -120}}, bus.SubjectExpired},
		{"reversed", ledger.Event{Entry: &ledger.Entry{ID: "r:reversal", Kind: ledger.KindReversal, Points: -20}}, bus.SubjectReversed},
		{"tier changed", ledger.Event{TierFrom: "Bronze", TierTo: "Silver", TierReason: "upgrade"}, bus.SubjectTierChanged},
	}
	for _, tt := range tests {
		for _, historic := range []bool{false, true} {
			ev := tt.ev
			ev.ID, ev.CustomerID, ev.At, ev.Historic = "id", "c", at, historic
			m, token := bus.Proto(ev)
			if token != tt.token || m.GetHistoric() != historic {
				t.Errorf("%s historic=%v: subject %s, historic %v", tt.name, historic, token, m.GetHistoric())
			}
		}
	}
}
