package app

import (
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/feedback/internal/feedback"
)

func TestWidth(t *testing.T) {
	load := func(name string) *time.Location {
		l, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	tests := []struct {
		name string
		loc  *time.Location
		want time.Duration
	}{
		{"utc", time.UTC, time.Hour},
		{"berlin across both DST changes", load("Europe/Berlin"), time.Hour},
		{"new york", load("America/New_York"), time.Hour},
		{"kolkata +05:30", load("Asia/Kolkata"), 15 * time.Minute},
		{"kathmandu +05:45", load("Asia/Kathmandu"), 15 * time.Minute},
		{"adelaide, half-hour offset with DST", load("Australia/Adelaide"), 15 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Width(tt.loc, from, to); got != tt.want {
				t.Errorf("Width = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	from := time.Date(2026, 8, 5, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		loc        *time.Location
		g          feedback.Granularity
		to         time.Time
		wantOrigin time.Time
		wantWidth  time.Duration
	}{
		{"kolkata days: whole days in SQL", kolkata, feedback.Day, from.AddDate(0, 0, 90), time.Date(2026, 8, 5, 0, 0, 0, 0, kolkata), 24 * time.Hour},
		{"kolkata weeks from Monday", kolkata, feedback.Week, from.AddDate(0, 0, 90), time.Date(2026, 8, 3, 0, 0, 0, 0, kolkata), 7 * 24 * time.Hour},
		{"kolkata months: quarter hours", kolkata, feedback.Month, from.AddDate(0, 0, 90), time.Unix(0, 0), 15 * time.Minute},
		{"berlin days in summer", berlin, feedback.Day, from.AddDate(0, 0, 30), time.Date(2026, 8, 5, 0, 0, 0, 0, berlin), 24 * time.Hour},
		{"berlin days across the change to winter time: hours", berlin, feedback.Day, from.AddDate(0, 0, 90), time.Unix(0, 0), time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			origin, width := Plan(tt.loc, tt.g, from, tt.to)
			if !origin.Equal(tt.wantOrigin) || width != tt.wantWidth {
				t.Errorf("Plan = %v, %v; want %v, %v", origin, width, tt.wantOrigin, tt.wantWidth)
			}
		})
	}
}
