package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra/doc"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
)

var update = flag.Bool("update", false, "rewrite the generated references (docs/cli) instead of comparing")

// cliReference is where the command reference lives, from this package.
const cliReference = "../../docs/cli"

// TestCLIReferenceIsCurrent keeps docs/cli, generated from the command
// tree, in step with it: `make docs` rewrites it, and CI fails when a
// command or flag changed without it.
func TestCLIReferenceIsCurrent(t *testing.T) {
	dir := t.TempDir()
	root := newApp(config.Map(nil), io.Discard, io.Discard).rootCommand()
	root.DisableAutoGenTag = true
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.RemoveAll(cliReference); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(cliReference, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	have, _ := filepath.Glob(filepath.Join(cliReference, "*.md"))
	if len(have) != len(want) {
		t.Errorf("docs/cli has %d pages, the commands make %d: run make docs", len(have), len(want))
	}
	for _, path := range want {
		generated, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		stored, err := os.ReadFile(filepath.Join(cliReference, name))
		if err != nil || string(stored) != string(generated) {
			t.Errorf("docs/cli/%s is not what the commands generate: run make docs", name)
		}
	}
}
