package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform"
	"github.com/boomerang-loyalty/boomerang/cmd/internal/platform/platformtest"
	"github.com/boomerang-loyalty/boomerang/pkg/config"
)

// TestServicesSubset: BOOMERANG_SERVICES runs some of the services in one
// process; the health check names those and no others, and an unknown or
// empty list is a configuration error that names the variable.
func TestServicesSubset(t *testing.T) {
	m := platformtest.Start(t, t.TempDir(), map[string]string{"BOOMERANG_SERVICES": "ingest, feedback"})
	if m.Ledger != nil || m.Segmentation != nil || m.Feedback == nil {
		t.Errorf("services: ledger %v, segmentation %v, feedback %v", m.Ledger != nil, m.Segmentation != nil, m.Feedback != nil)
	}
	var health map[string]string
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+m.HTTPAddr()+"/healthz", http.StatusOK)), &health); err != nil {
		t.Fatal(err)
	}
	if health["boomerang.ingest.v1.IngestService"] != "ok" || health["boomerang.feedback.v1.FeedbackService"] != "ok" ||
		health["boomerang.ledger.v1.LedgerService"] != "" || health["boomerang.segmentation.v1.SegmentationService"] != "" {
		t.Errorf("healthz %v: want ingest and feedback only", health)
	}

	for _, bad := range []string{"ingest,loyalty", " , "} {
		_, err := platform.LoadConfig(config.Map(map[string]string{"BOOMERANG_SERVICES": bad}))
		if err == nil || !strings.Contains(err.Error(), "BOOMERANG_SERVICES") {
			t.Errorf("BOOMERANG_SERVICES=%q: %v, want an error naming the variable", bad, err)
		}
	}
}
