package busauth_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
)

// deployConfig is the distributed deployment's server configuration.
const deployConfig = "../../deploy/nats/nats.conf"

// TestDeployConfig: deploy/nats/nats.conf names every user with the
// permissions of busauth and its password from the environment, and a
// server started from it enforces them as the embedded one does.
func TestDeployConfig(t *testing.T) {
	for _, name := range busauth.Names() {
		t.Setenv("NATS_"+strings.ToUpper(name)+"_PASSWORD", password(name))
	}
	opts, err := server.ProcessConfigFile(deployConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !opts.JetStream || opts.StoreDir != "/data" {
		t.Errorf("JetStream %v in %q, want on in /data", opts.JetStream, opts.StoreDir)
	}
	var names []string
	for _, u := range opts.Users {
		names = append(names, u.Username)
		pub, sub, ok := busauth.Permissions(u.Username)
		switch {
		case !ok:
			t.Errorf("user %s is not one of busauth's", u.Username)
			continue
		case u.Password != password(u.Username):
			t.Errorf("user %s: password not from NATS_%s_PASSWORD", u.Username, strings.ToUpper(u.Username))
		case u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Subscribe == nil:
			t.Errorf("user %s: no publish and subscribe permissions", u.Username)
			continue
		}
		if got := u.Permissions.Publish; !slices.Equal(got.Allow, pub) || len(got.Deny) > 0 {
			t.Errorf("user %s publishes to %v (deny %v), busauth says %v", u.Username, got.Allow, got.Deny, pub)
		}
		if got := u.Permissions.Subscribe; !slices.Equal(got.Allow, sub) || len(got.Deny) > 0 {
			t.Errorf("user %s subscribes to %v (deny %v), busauth says %v", u.Username, got.Allow, got.Deny, sub)
		}
	}
	slices.Sort(names)
	want := busauth.Names()
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("users %v, want %v", names, want)
	}
	if opts.NoAuthUser != "" {
		t.Fatalf("anonymous clients are %s", opts.NoAuthUser)
	}

	// The same file, on a free port and a temporary store.
	opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir = "127.0.0.1", -1, 0, t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	t.Cleanup(ns.Shutdown)
	platformStreams(t, ns.ClientURL())
	t.Run("shop", func(t *testing.T) { shopMayOnlyPublishIntake(t, ns.ClientURL()) })
	t.Run("services", func(t *testing.T) { servicesUseOnlyTheirStreamsAndConsumers(t, ns.ClientURL()) })
}
