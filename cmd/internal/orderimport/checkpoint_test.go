package orderimport

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "import.checkpoint")
	c, err := LoadCheckpoint(path)
	if err != nil || len(c.Files) != 0 {
		t.Fatalf("missing checkpoint: %+v, %v; want an empty one", c, err)
	}
	data := filepath.Join(dir, "orders.jsonl")
	if err := os.WriteFile(data, []byte(strings.Repeat(`{"order_id":"1"}`+"\n", 10000)), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, head, err := Identify(f)
	if err != nil || size != 170000 {
		t.Fatalf("Identify: %d, %v", size, err)
	}
	st, err := c.State(data, size, head, JSONL)
	if err != nil {
		t.Fatal(err)
	}
	st.Position = Position{Offset: 1700, Row: 100}
	st.Counts = Counts{Orders: 100, Events: 100, Accepted: 99, Rejected: 1}
	c.Source = "shop"
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(path); err != nil { // over an existing one
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("the directory holds %d files, want the data and the checkpoint (no temporary left)", len(entries))
	}

	back, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := back.State(data, size, head, JSONL)
	if err != nil || got.Position != st.Position || got.Counts != st.Counts || back.Source != "shop" {
		t.Errorf("loaded %+v (%+v), %v; want %+v", back, got, err, c)
	}
	if _, err := back.State(data, size+1, head, JSONL); !errors.Is(err, ErrFileChanged) {
		t.Errorf("another size: %v, want ErrFileChanged", err)
	}
	if _, err := back.State(data, size, "other", JSONL); !errors.Is(err, ErrFileChanged) {
		t.Errorf("another head: %v, want ErrFileChanged", err)
	}
	if _, err := back.State(data, size, head, Shopify); err == nil {
		t.Error("another format: no error")
	}

	if err := os.WriteFile(path, []byte(`{"version":9}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(path); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("unknown version: %v", err)
	}
}
