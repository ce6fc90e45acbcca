package host

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

func TestPprof(t *testing.T) {
	const admin, reader = "admin-token-0123456789", "reader-token-0123456789"
	tokens := &grpcx.Tokens{}
	tokens.Add(admin, grpcx.ScopeAdmin)
	tokens.Add(reader, "segmentation:read")
	get := func(t *testing.T, addr, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/debug/pprof/heap?debug=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		name  string
		pprof bool
		token string
		want  int
	}{
		{"off by default, even for admin", false, admin, http.StatusNotFound},
		{"on, no token", true, "", http.StatusUnauthorized},
		{"on, unknown token", true, "not-a-known-token-at-all", http.StatusUnauthorized},
		{"on, token without admin scope", true, reader, http.StatusUnauthorized},
		{"on, admin token", true, admin, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Tokens: tokens, Pprof: tc.pprof,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- h.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			code, body := get(t, h.HTTPAddr(), tc.token)
			if code != tc.want {
				t.Fatalf("GET /debug/pprof/heap: got %d, want %d (%s)", code, tc.want, body)
			}
			if code == http.StatusOK && !strings.Contains(body, "heap profile:") {
				t.Fatalf("GET /debug/pprof/heap?debug=1: got %.80q, want a heap profile", body)
			}
		})
	}
}
