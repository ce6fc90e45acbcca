package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDeclaredVariablesReadAndCheck(t *testing.T) {
	s := NewSet("vars-test", 0, "Test variables.")
	batch := s.Int("VARS_TEST_BATCH", 512, 1, 10000, "Messages per batch.")
	wait := s.Duration("VARS_TEST_WAIT", 30*time.Second, time.Second, time.Hour, "Ack wait.")
	age := s.Duration("VARS_TEST_AGE", 30*24*time.Hour, 0, Forever, "Max age; 0 keeps all.")
	password := s.Family("VARS_TEST_<USER>_PASSWORD", "<USER>", "Password of a user.")
	name := s.String("VARS_TEST_NAME", "", "A name.")

	r := NewReader(Map(map[string]string{"VARS_TEST_BATCH": "0", "VARS_TEST_WAIT": "0s", "VARS_TEST_AGE": "0", "VARS_TEST_SHOP_PASSWORD": "secret"}))
	if got := batch.Read(r); got != 512 {
		t.Errorf("batch below minimum read %d, want the default 512", got)
	}
	if got := wait.Read(r); got != 30*time.Second {
		t.Errorf("zero positive duration read %s, want the default", got)
	}
	if got := age.Read(r); got != 0 {
		t.Errorf("zero age read %s, want 0", got)
	}
	if got := password.Read(r, "shop"); got != "secret" {
		t.Errorf("family member read %q", got)
	}
	if got := name.Read(r); got != "" {
		t.Errorf("unset name read %q", got)
	}
	err := r.Err()
	if err == nil || !strings.Contains(err.Error(), "VARS_TEST_BATCH: 0, want 1..10000") || !strings.Contains(err.Error(), "VARS_TEST_WAIT: 0, want 1s..1h") {
		t.Fatalf("errors = %v, want both variables named", err)
	}
	if v, ok := Lookup("VARS_TEST_ADMIN_PASSWORD"); !ok || v.Name != "VARS_TEST_<USER>_PASSWORD" {
		t.Errorf("Lookup of a family member = %+v, %v", v, ok)
	}
	if v, ok := Lookup("VARS_TEST_AGE"); !ok || v.Default != "720h" {
		t.Fatalf("Lookup = %+v, %v; want default 720h", v, ok)
	}

	var b bytes.Buffer
	if err := WriteMarkdown(&b, []*Set{s}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## vars-test", "| `VARS_TEST_BATCH` | integer | `512` | 1–10000 | Messages per batch. |", "| `VARS_TEST_NAME` | string | (unset) |  | A name. |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
}

func TestVariableDeclaredTwicePanics(t *testing.T) {
	s := NewSet("vars-twice", 0, "")
	s.Bool("VARS_TWICE", false, "")
	defer func() {
		if recover() == nil {
			t.Fatal("a second declaration of VARS_TWICE did not panic")
		}
	}()
	s.Bool("VARS_TWICE", true, "")
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0", 2 * time.Minute: "2m", 30 * time.Second: "30s", 720 * time.Hour: "720h", 90 * time.Minute: "1h30m", 250 * time.Millisecond: "250ms"} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
