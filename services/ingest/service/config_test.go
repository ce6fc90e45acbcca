package service_test

import (
	"strings"
	"testing"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/services/ingest/service"
)

// TestWebhookSourcesConfig: each webhook source needs a known platform, a
// name that fits the bus subjects and a long enough secret, and an error
// names the variable to fix.
func TestWebhookSourcesConfig(t *testing.T) {
	const good = "0123456789abcdef"
	tests := []struct {
		name string
		env  map[string]string
		want string // in the error; "" for none
	}{
		{"none", nil, ""},
		{"two sources", map[string]string{"INGEST_WEBHOOK_SOURCES": "shop-eu:generic, inhouse:generic",
			"INGEST_WEBHOOK_SECRET_SHOP_EU": good, "INGEST_WEBHOOK_SECRET_INHOUSE": good}, ""},
		{"no secret", map[string]string{"INGEST_WEBHOOK_SOURCES": "shop-eu:generic"}, "INGEST_WEBHOOK_SECRET_SHOP_EU: required"},
		{"short secret", map[string]string{"INGEST_WEBHOOK_SOURCES": "shop-eu:generic", "INGEST_WEBHOOK_SECRET_SHOP_EU": "short"},
			"INGEST_WEBHOOK_SECRET_SHOP_EU: required"},
		{"no platform", map[string]string{"INGEST_WEBHOOK_SOURCES": "shop-eu"}, "INGEST_WEBHOOK_SOURCES: \"shop-eu\" is not source:platform"},
		{"unknown platform", map[string]string{"INGEST_WEBHOOK_SOURCES": "shop-eu:magento", "INGEST_WEBHOOK_SECRET_SHOP_EU": good},
			"unknown platform \"magento\""},
		{"bad source", map[string]string{"INGEST_WEBHOOK_SOURCES": "Shop.EU:generic"}, "INGEST_WEBHOOK_SOURCES: source \"Shop.EU\""},
		{"twice", map[string]string{"INGEST_WEBHOOK_SOURCES": "shop-eu:generic,shop_eu:generic", "INGEST_WEBHOOK_SECRET_SHOP_EU": good},
			"listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"BOOMERANG_IDENTITY_SECRET": strings.Repeat("ab", 32)}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := service.LoadConfig(config.Map(env))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one with %q", err, tt.want)
			case err == nil && len(cfg.WebhookSources) > 0 && string(cfg.WebhookSources[0].Secret) != good:
				t.Errorf("secret of %s not read", cfg.WebhookSources[0].Name)
			}
			if err != nil && strings.Contains(err.Error(), good) {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}
}

// TestPeerConfig: a service the customer read dials needs the token it
// sends; none dialled, none needed.
func TestPeerConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // in the error; "" for none
	}{
		{"no peers", nil, ""},
		{"peers and a token", map[string]string{"INGEST_LEDGER_ADDR": "ledger:7443", "INGEST_SEGMENTATION_ADDR": "segmentation:7443",
			"INGEST_FEEDBACK_ADDR": "feedback:7443", "INGEST_PEER_TOKEN": "0123456789abcdef"}, ""},
		{"a peer without a token", map[string]string{"INGEST_FEEDBACK_ADDR": "feedback:7443"}, "INGEST_PEER_TOKEN: required"},
		{"a timeout too short", map[string]string{"INGEST_PEER_TIMEOUT": "1ms"}, "INGEST_PEER_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"BOOMERANG_IDENTITY_SECRET": strings.Repeat("ab", 32)}
			for k, v := range tt.env {
				env[k] = v
			}
			_, err := service.LoadConfig(config.Map(env))
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}
