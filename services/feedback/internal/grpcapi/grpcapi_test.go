package grpcapi

import (
	"testing"
	"time"
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
