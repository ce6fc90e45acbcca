package hot

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

func codecProfiles() []segment.Profile {
	at := time.Date(2026, 4, 1, 12, 0, 0, 123456789, time.UTC)
	return []segment.Profile{
		{},
		{CustomerID: "cus_1", Currency: "EUR", Orders: 3, TotalValue: 12345, AverageOrderValue: 4115, FirstOrderAt: at,
			LastOrderAt: at.AddDate(0, 2, 0), DiscountedOrders: 1, DiscountedShare: 1.0 / 3, Refunds: 1, RefundedValue: -7,
			Channels: []string{"app", "web", "ünï"}, RFM: segment.RFM{R: 5, F: 4, M: 3}, Segment: segment.Champions,
			Flags: segment.VIP | segment.Agony, Prediction: &segment.Prediction{ExpectedPurchases: 2.5, HorizonDays: 365,
				PAlive: math.Nextafter(1, 0), ExpectedOrderValue: 1 << 40, CLV: -(1 << 50)}},
		{CustomerID: `we"ird\id`, Orders: 1, FirstOrderAt: time.Unix(-1, 5).UTC(), Prediction: &segment.Prediction{}},
		{CustomerID: "cus_2", Orders: 2, Prediction: &segment.Prediction{ExpectedPurchases: 1.5, HorizonDays: 365, PAlive: 0.8,
			ExpectedOrderValue: 4200, CLV: 12000, Interval: true, PurchasesLow: 1.1, PurchasesHigh: 2.25, CLVLow: 8000, CLVHigh: -(1 << 45)}},
		{CustomerID: "cus_3", Orders: 1, Withheld: segment.WithheldNotEnoughHistory},
	}
}

// TestProfileV1 reads a profile as version 1 wrote it: no interval, no
// withheld reason.
func TestProfileV1(t *testing.T) {
	p := codecProfiles()[1]
	v2 := appendProfile(nil, &p)
	// Version 2 is version 1 with an interval presence byte after the
	// prediction and the withheld reason at the end, both 0 here.
	if v2[0] != profileV2 || !bytes.HasSuffix(v2, []byte{0, 0}) {
		t.Fatalf("unexpected encoding % x", v2)
	}
	v1 := append([]byte{profileV1}, v2[1:len(v2)-2]...)
	var got segment.Profile
	if err := decodeProfile(v1, &got); err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("version 1: got %+v, %v; want %+v", got, err, p)
	}
}

func TestProfileRoundTrip(t *testing.T) {
	for _, p := range codecProfiles() {
		var got segment.Profile
		if err := decodeProfile(appendProfile(nil, &p), &got); err != nil {
			t.Fatalf("%q: %v", p.CustomerID, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, p)
		}
		// Profiles earlier versions wrote as JSON read the same.
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON segment.Profile
		if err := decodeProfile(js, &fromJSON); err != nil || !reflect.DeepEqual(fromJSON, got) {
			t.Errorf("from JSON %+v, %v; want %+v", fromJSON, err, got)
		}
	}
}

func TestProfileCorrupt(t *testing.T) {
	b := appendProfile(nil, &codecProfiles()[3])
	for n := 0; n < len(b); n++ {
		var p segment.Profile
		if err := decodeProfile(b[:n], &p); err == nil {
			t.Errorf("%d of %d bytes decoded", n, len(b))
		}
	}
	var p segment.Profile
	if err := decodeProfile(append(b, 0), &p); err == nil {
		t.Error("a trailing byte was accepted")
	}
}

func FuzzDecodeProfile(f *testing.F) {
	for _, p := range codecProfiles() {
		f.Add(appendProfile(nil, &p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p segment.Profile
		if decodeProfile(b, &p) != nil || (len(b) > 0 && b[0] == '{') {
			return
		}
		// Compared as bytes: a decoded float may be NaN.
		enc := appendProfile(nil, &p)
		var again segment.Profile
		if err := decodeProfile(enc, &again); err != nil || !bytes.Equal(appendProfile(nil, &again), enc) {
			t.Fatalf("decoded %+v does not survive a round trip: %+v, %v", p, again, err)
		}
	})
}
