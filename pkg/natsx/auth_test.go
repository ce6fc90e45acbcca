package natsx_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
)

func TestRunEmbeddedRefusesAnOpenNetworkServer(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "::", "192.0.2.1"} {
		ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Host: host, Port: -1, StoreDir: t.TempDir()})
		if err == nil {
			ns.Shutdown()
			t.Fatalf("%s: started without users", host)
		}
		if !errors.Is(err, natsx.ErrNoCredentials) {
			t.Fatalf("%s: %v, want ErrNoCredentials", host, err)
		}
	}
	// With a user it listens on every interface and lets only that user in.
	u := natsx.User{Name: "shop", Password: "0123456789abcdef-shop", Publish: []string{"in.>"}, Subscribe: []string{natsx.InboxPrefix("shop") + ".>"}}
	ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Host: "0.0.0.0", Port: -1, StoreDir: t.TempDir(), Users: []natsx.User{u}})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	if nc, err := nats.Connect(ns.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("anonymous client connected")
	}
	nc, err := nats.Connect(ns.ClientURL(), natsx.Credentials{User: u.Name, Password: u.Password}.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

func TestRunEmbeddedRefusesWeakUsers(t *testing.T) {
	for _, tt := range []struct {
		name  string
		users []natsx.User
	}{
		{name: "short password", users: []natsx.User{{Name: "a", Password: "short"}}},
		{name: "name not a token", users: []natsx.User{{Name: "a.b", Password: "0123456789abcdef"}}},
		{name: "twice", users: []natsx.User{{Name: "a", Password: "0123456789abcdef"}, {Name: "a", Password: "0123456789abcdefg"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Port: -1, StoreDir: t.TempDir(), Users: tt.users})
			if err == nil {
				ns.Shutdown()
				t.Fatal("started")
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	for _, tt := range []struct {
		in   string
		url  bool
		want bool
	}{
		{in: "127.0.0.1", want: true},
		{in: "127.1.2.3", want: true},
		{in: "localhost", want: true},
		{in: "::1", want: true},
		{in: "[::1]", want: true},
		{in: "0.0.0.0"},
		{in: "::"},
		{in: ""},
		{in: "10.0.0.5"},
		{in: "nats"},
		{in: "nats://127.0.0.1:4222", url: true, want: true},
		{in: "nats://localhost:4222,nats://[::1]:4223", url: true, want: true},
		{in: "127.0.0.1:4222", url: true, want: true},
		{in: "nats://nats:4222", url: true},
		{in: "nats://127.0.0.1:4222,nats://10.0.0.2:4222", url: true},
		{in: "tls://0.0.0.0:4222", url: true},
	} {
		got := natsx.IsLoopback(tt.in)
		if tt.url {
			got = natsx.URLsAreLoopback(tt.in)
		}
		if got != tt.want {
			t.Errorf("%q: loopback %v, want %v", tt.in, got, tt.want)
		}
	}
}
