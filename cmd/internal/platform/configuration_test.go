package platform

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"testing"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	feedback "github.com/boomerang-loyalty/boomerang/services/feedback/service"
	ingest "github.com/boomerang-loyalty/boomerang/services/ingest/service"
	ledger "github.com/boomerang-loyalty/boomerang/services/ledger/service"
	segmentation "github.com/boomerang-loyalty/boomerang/services/segmentation/service"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md instead of comparing")

// configurationReference is the generated reference, from this package.
const configurationReference = "../../../docs/configuration.md"

// TestConfigurationReferenceIsCurrent keeps docs/configuration.md, made
// from the declared variables, in step with them: `make docs` rewrites it,
// and CI fails when a variable changed without it.
func TestConfigurationReferenceIsCurrent(t *testing.T) {
	var b bytes.Buffer
	if err := config.WriteMarkdown(&b, config.Sets()); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(configurationReference, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	stored, err := os.ReadFile(configurationReference)
	if err != nil || !bytes.Equal(stored, b.Bytes()) {
		t.Fatalf("docs/configuration.md is not what the declared variables generate: run make docs")
	}
}

// TestEveryVariableReadIsDeclared reads every configuration there is and
// checks that each variable looked up is declared, so none is missing
// from the reference.
func TestEveryVariableReadIsDeclared(t *testing.T) {
	var read []string
	env := func(name string) (string, bool) {
		read = append(read, name)
		return "", false
	}
	_, _ = LoadConfig(env)
	_, _ = ingest.LoadConfig(env)
	_, _ = ledger.LoadConfig(env)
	_, _ = segmentation.LoadConfig(env)
	_, _ = feedback.LoadConfig(env)
	for _, svc := range []string{ingest.Name, ledger.Name, segmentation.Name, feedback.Name} {
		host.NATSCredentials(env, svc)
	}
	if len(read) < 60 {
		t.Fatalf("only %d variables read; the recording source is not used", len(read))
	}
	slices.Sort(read)
	for _, name := range slices.Compact(read) {
		if _, ok := config.Lookup(name); !ok {
			t.Errorf("%s is read but not declared in any config.Set", name)
		}
	}
}
