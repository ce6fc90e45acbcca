package feedback

import (
	"testing"
	"time"
)

// TestBatchRecord: the intake rules decide on what the store read, with
// no store: duplicates change nothing, a detractor and a negative review
// open cases with their events, a customer segmentation has not told waits
// for its segment, and a profile moves the waiting responses' counts.
func TestBatchRecord(t *testing.T) {
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	at := now.Add(-time.Hour)
	atMS := at.UnixMilli()
	b := NewBatch()
	b.Rollup = NewRollup(nil)
	b.SeenResponses["old"] = true
	b.Customers["ann"] = &Customer{Profile: Profile{Segment: 4}, Known: true}
	b.Customers["cat"] = &Customer{PendingSince: now.Add(-24 * time.Hour)}
	b.Pending["cat"] = []Scored{{AtMS: atMS, Kind: NPS, Score: 10}}
	in := []Input{
		{Response: &Response{ID: "r1", CustomerID: "ann", Kind: NPS, Score: 3, At: at}},
		{Response: &Response{ID: "r1", CustomerID: "ann", Kind: NPS, Score: 3, At: at}},
		{Response: &Response{ID: "old", CustomerID: "ann", Kind: NPS, Score: 9, At: at}},
		{Response: &Response{ID: "r2", CustomerID: "bob", Kind: CSAT, Score: 5, At: at}},
		{Review: &Review{ID: "v1", Platform: "shop", CustomerID: "ann", Rating: 1, CreatedAt: at}},
	}
	b.Record(in, map[string]Profile{"cat": {Segment: 7}}, now, 6*time.Hour)

	want := []InputOutcome{Applied, Duplicate, Duplicate, Applied, Applied}
	for i, o := range b.Outcomes {
		if o != want[i] {
			t.Errorf("outcome %d = %v, want %v", i, o, want[i])
		}
	}
	if len(b.Cases) != 2 || b.Cases[0].ID != "nps:r1" || b.Cases[1].ID != "review:shop/v1" || len(b.Events) != 2 {
		t.Errorf("cases %+v, events %d; want nps:r1 and review:shop/v1 with their events", b.Cases, len(b.Events))
	}
	if len(b.Responses) != 2 || b.Responses[0].Segment != 4 || b.Responses[0].Pending || b.Responses[1].Segment != 0 || !b.Responses[1].Pending {
		t.Errorf("responses %+v: want r1 in segment 4, r2 waiting", b.Responses)
	}
	if bob := b.Customers["bob"]; bob == nil || !bob.PendingSince.Equal(now) || !bob.Changed {
		t.Errorf("bob %+v: want waiting since now", bob)
	}
	if cat := b.Customers["cat"]; !cat.Known || !cat.PendingSince.IsZero() || len(b.Filled) != 1 || b.Filled[0] != "cat" {
		t.Errorf("cat %+v, filled %v: want known and filled", cat, b.Filled)
	}
	bucket := atMS / BucketMS
	for _, tt := range []struct {
		name string
		key  RollupKey
		want RollupCounts
	}{
		{"ann's detractor", RollupKey{"", bucket, 4, int(NPS)}, RollupCounts{N: 1, Low: 1, Sum: 3}},
		{"bob's satisfied answer, waiting", RollupKey{"", bucket, 0, int(CSAT)}, RollupCounts{N: 1, High: 1, Sum: 5}},
		{"cat's promoter leaves segment 0", RollupKey{"", bucket, 0, int(NPS)}, RollupCounts{N: -1, High: -1, Sum: -10}},
		{"cat's promoter joins segment 7", RollupKey{"", bucket, 7, int(NPS)}, RollupCounts{N: 1, High: 1, Sum: 10}},
	} {
		if got := b.Rollup.Rows[tt.key]; got == nil || *got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestBatchSweep: only tickets past the threshold open a case, once.
func TestBatchSweep(t *testing.T) {
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	b := NewBatch()
	b.Tickets["late"] = &Ticket{ID: "late", CustomerID: "ann", OpenedAt: now.Add(-7 * time.Hour)}
	b.Tickets["fresh"] = &Ticket{ID: "fresh", CustomerID: "bob", OpenedAt: now.Add(-time.Hour)}
	b.Sweep(now, 6*time.Hour)
	if len(b.Cases) != 1 || b.Cases[0].ID != "slow:late" || len(b.ChangedTickets) != 1 || !b.Tickets["late"].Agony {
		t.Fatalf("cases %+v, changed %v", b.Cases, b.ChangedTickets)
	}
}
