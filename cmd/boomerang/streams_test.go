package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform/platformtest"
)

// TestStreamsDuplicateWindow: every stream the services create remembers
// message ids for a minute (natsx.DuplicateWindow, what the outbox relays'
// resends need), not NATS's default of two minutes: the server holds an
// entry per message in the window.
func TestStreamsDuplicateWindow(t *testing.T) {
	m := platformtest.Start(t, t.TempDir(), nil)
	_, js := platformtest.Admin(t, m)
	ctx := context.Background()
	var names []string
	for name := range js.StreamNames(ctx).Name() {
		names = append(names, name)
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Duplicates; got != time.Minute {
			t.Errorf("%s: duplicate window %v, want %v", name, got, time.Minute)
		}
	}
	slices.Sort(names)
	want := []string{"DEADLETTER", "FEEDBACK", "FEEDBACK_IN", "INGEST", "LEDGER", "ORDERS", "SEGMENT"}
	if !slices.Equal(names, want) {
		t.Errorf("streams %v, want %v", names, want)
	}
}

// TestStreamsOfAnEarlierRelease: the platform starts on the data of a
// release whose streams remembered message ids for two minutes, though
// segmentation, which only reads FEEDBACK, starts before feedback, its
// owner, and may not change it; each owner then brings its streams to
// the one-minute window.
func TestStreamsOfAnEarlierRelease(t *testing.T) {
	dir := t.TempDir()
	t.Run("earlier release", func(t *testing.T) {
		m := platformtest.Start(t, dir, nil)
		_, js := platformtest.Admin(t, m)
		ctx := context.Background()
		for name := range js.StreamNames(ctx).Name() {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.CachedInfo().Config
			cfg.Duplicates = 2 * time.Minute
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	})
	t.Run("this release", func(t *testing.T) {
		m := platformtest.Start(t, dir, nil)
		_, js := platformtest.Admin(t, m)
		ctx := context.Background()
		for name := range js.StreamNames(ctx).Name() {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config.Duplicates; got != time.Minute {
				t.Errorf("%s: duplicate window %v, want %v", name, got, time.Minute)
			}
		}
	})
}
