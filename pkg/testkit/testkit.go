// Package testkit starts the real dependencies tests talk to — an
// in-process NATS server with JetStream, throwaway PostgreSQL and Redis
// servers from the installed binaries (or the servers named by environment
// variables), a gRPC server on a free port — each cleaned up with the test.
//
// Environment:
//
//	BOOMERANG_TEST_POSTGRES_URL  admin URL of a PostgreSQL server to create test databases in
//	BOOMERANG_TEST_REDIS_URL     URL of a Redis server (each test takes its own database number and flushes it)
//	BOOMERANG_TEST_REQUIRE_ALL   when true, a missing PostgreSQL or Redis fails the test instead of skipping it
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
)

// Main runs the package's tests and stops the shared servers afterwards;
// call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	stopShared()
	os.Exit(code)
}

var (
	sharedMu   sync.Mutex
	sharedStop []func()
)

func addShared(stop func()) {
	sharedMu.Lock()
	sharedStop = append(sharedStop, stop)
	sharedMu.Unlock()
}

func stopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for i := len(sharedStop) - 1; i >= 0; i-- {
		sharedStop[i]()
	}
	sharedStop = nil
}

// NATS starts an in-process NATS server with JetStream in a temporary
// directory and returns it with its client URL.
func NATS(tb testing.TB) (*server.Server, string) {
	tb.Helper()
	ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{Port: -1, StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ns.Shutdown)
	return ns, ns.ClientURL()
}

// JetStream connects to url and returns a JetStream handle closed with the
// test.
func JetStream(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// GRPC serves the services register adds on a free loopback port and
// returns the address.
func GRPC(tb testing.TB, s *grpc.Server) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	tb.Cleanup(s.Stop)
	return lis.Addr().String()
}

func listenFree() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePort returns a TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func requireAll() bool {
	v, _ := strconv.ParseBool(os.Getenv("BOOMERANG_TEST_REQUIRE_ALL"))
	return v
}

func unavailable(tb testing.TB, what string, err error) {
	tb.Helper()
	if requireAll() {
		tb.Fatalf("%s unavailable (BOOMERANG_TEST_REQUIRE_ALL is set): %v", what, err)
	}
	tb.Skipf("%s unavailable: %v", what, err)
}

func waitTCP(addr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
