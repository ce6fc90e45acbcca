package platform

import (
	"testing"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/streams"
)

// TestStreamRetentionIsDeclared: the retention variable the registry names
// for each stream is a declared duration, so a renamed variable cannot
// leave a stream's documented retention pointing nowhere.
func TestStreamRetentionIsDeclared(t *testing.T) {
	for _, s := range streams.All() {
		v, ok := config.Lookup(s.MaxAgeVar)
		if !ok {
			t.Errorf("stream %s: retention variable %s is not declared", s.Name, s.MaxAgeVar)
			continue
		}
		if v.Kind != "duration" {
			t.Errorf("stream %s: %s is a %s, not a duration", s.Name, s.MaxAgeVar, v.Kind)
		}
	}
}
