package bus

import (
	"testing"

	"github.com/boomerang-loyalty/boomerang/pkg/busrouter"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
)

// TestReasonFailedIsTheRouters: the router parks a message that keeps
// failing with its own reason, which must be the one order-ingest
// documents to shops and operators.
func TestReasonFailedIsTheRouters(t *testing.T) {
	if ingest.ReasonFailed != busrouter.ReasonFailed {
		t.Fatalf("ingest.ReasonFailed = %q, busrouter.ReasonFailed = %q", ingest.ReasonFailed, busrouter.ReasonFailed)
	}
}
