package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// key returns the identity key of kind ("p" or "e") made from n, of the
// form ingest.Hasher gives.
func key(kind string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(n)))
	return kind + ":" + hex.EncodeToString(sum[:])
}

func TestIdentityCacheRemembers(t *testing.T) {
	c := newIdentityCache(100)
	p, e := key("p", 1), key("e", 1)
	c.addAll(map[string]string{p: "cus_one", e: "cus_one", "legacy-key": "cus_two", strings.ToUpper(key("p", 2)): "cus_two"})
	for _, tc := range []struct {
		name, key, want string
		ok              bool
	}{
		{"platform key", p, "cus_one", true},
		{"e-mail key of the same digest", "e" + p[1:], "cus_one", true},
		{"key of another kind", "x" + p[1:], "", false},
		{"unknown key", key("p", 3), "", false},
		{"key of another form, not cached", "legacy-key", "", false},
		{"upper-case digits, not cached", strings.ToUpper(key("p", 2)), "", false},
		{"lower-case twin of an upper-case key", "p" + strings.ToUpper(key("p", 2))[1:], "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := c.get(tc.key); got != tc.want || ok != tc.ok {
				t.Errorf("get(%q) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// The cache never holds more than its bound, and a link in use survives
// any number of others coming and going.
func TestIdentityCacheBounded(t *testing.T) {
	const bound = 8
	c := newIdentityCache(bound)
	hot := key("p", 0)
	c.addAll(map[string]string{hot: "cus_hot"})
	for i := 1; i <= 100; i++ {
		c.addAll(map[string]string{key("e", i): fmt.Sprint("cus_", i)})
		if n := c.size(); n > bound {
			t.Fatalf("after %d links: %d remembered, want at most %d", i+1, n, bound)
		}
		if v, ok := c.get(hot); !ok || v != "cus_hot" {
			t.Fatalf("after %d links: the link in use is gone (%q, %v)", i+1, v, ok)
		}
	}
	if _, ok := c.get(key("e", 1)); ok {
		t.Error("the first link unused since is still remembered")
	}
	if v, ok := c.get(key("e", 100)); !ok || v != "cus_100" {
		t.Errorf("the latest link: %q, %v", v, ok)
	}
}

// The cache holds a link in well under the 148 bytes a map of the keys'
// strings took: for 100,000 customers of two keys each it stays under
// 110 bytes a link, customer ids included.
func TestIdentityCacheMemory(t *testing.T) {
	const customers = 100_000
	c := newIdentityCache(identityCacheSize)
	before := liveHeap()
	for i := range customers / 1000 {
		links := map[string]string{}
		for j := range 1000 {
			n := i*1000 + j
			id := fmt.Sprintf("cus_%024d", n)
			links[key("p", n)], links[key("e", n)] = id, id
		}
		c.addAll(links)
	}
	perLink := float64(liveHeap()-before) / (2 * customers)
	if c.size() != 2*customers {
		t.Fatalf("%d links remembered, want %d", c.size(), 2*customers)
	}
	if perLink > 110 {
		t.Errorf("%.0f bytes a link, want at most 110", perLink)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
