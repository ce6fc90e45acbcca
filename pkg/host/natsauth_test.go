package host

import (
	"context"
	"strings"
	"testing"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
)

var testVars = config.NewSet("host tests", 100, "")

func TestStandaloneRefusesRemoteNATSWithoutCredentials(t *testing.T) {
	env := config.Map(map[string]string{
		"NATS_URL":              "nats://nats.example.com:4222",
		"HOSTTEST_DATABASE_URL": "sqlite:" + t.TempDir() + "/x.db",
		"BOOMERANG_API_TOKENS":  "token-0123456789abcdef:admin",
	})
	mod := Module{Name: "order-ingest", DatabaseURL: testVars.String("HOSTTEST_DATABASE_URL", "", "a test database"),
		Build: func(context.Context, Deps) (Service, error) {
			t.Fatal("service built")
			return nil, nil
		}}
	err := standalone(context.Background(), mod, env)
	if err == nil || !strings.Contains(err.Error(), "NATS_URL: nats://nats.example.com:4222 is not on this machine") || !strings.Contains(err.Error(), "NATS_USER") {
		t.Fatalf("error %v, want one naming NATS_USER", err)
	}
}

func TestNATSCredentials(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     map[string]string
		url     string
		want    natsx.Credentials
		refused bool
		service string
	}{
		{name: "none, local server", url: "nats://127.0.0.1:4222"},
		{name: "none, remote server", url: "nats://nats:4222", refused: true},
		{name: "none, one of the servers remote", url: "nats://127.0.0.1:4222,nats://nats:4222", refused: true},
		{name: "in the URL", url: "nats://ingest:secret@nats:4222"},
		{name: "common", url: "nats://nats:4222", env: map[string]string{"NATS_USER": "ingest", "NATS_PASSWORD": "p"},
			want: natsx.Credentials{User: "ingest", Password: "p"}},
		{name: "the service's own first", url: "nats://nats:4222",
			env:  map[string]string{"NATS_USER": "x", "NATS_PASSWORD": "p", "NATS_INGEST_USER": "ing", "NATS_INGEST_PASSWORD": "q"},
			want: natsx.Credentials{User: "ing", Password: "q"}},
		{name: "the service's own password alone is its user's", url: "nats://nats:4222",
			env:  map[string]string{"NATS_INGEST_PASSWORD": "q"},
			want: natsx.Credentials{User: "ingest", Password: "q"}},
		{name: "the bus user is the last word of the service's name", url: "nats://nats:4222",
			env: map[string]string{"NATS_INGEST_PASSWORD": "q"}, service: "order-ingest",
			want: natsx.Credentials{User: "ingest", Password: "q"}},
		{name: "another service's are not ours", url: "nats://nats:4222", env: map[string]string{"NATS_LEDGER_USER": "ledger", "NATS_LEDGER_PASSWORD": "q"}, refused: true},
		{name: "creds file and inbox", url: "nats://nats:4222", env: map[string]string{"NATS_CREDS": "/run/ingest.creds", "NATS_INBOX_PREFIX": "_I.ingest"},
			want: natsx.Credentials{CredsFile: "/run/ingest.creds", InboxPrefix: "_I.ingest"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			service := tt.service
			if service == "" {
				service = "ingest"
			}
			got := NATSCredentials(config.Map(tt.env), service)
			if got != tt.want {
				t.Fatalf("credentials %+v, want %+v", got, tt.want)
			}
			if err := CheckNATS(tt.url, got); (err != nil) != tt.refused {
				t.Fatalf("CheckNATS: %v, want refused %v", err, tt.refused)
			}
		})
	}
}
