//go:build faults

package faults

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

var (
	flagOrders = flag.Int("faults.orders", 10000, "orders in the workload")
	flagKills  = flag.Int("faults.kills", 3, "SIGKILLs during the load")
	flagSeed   = flag.Uint64("faults.seed", 1, "workload and fault schedule seed")
	flagKeep   = flag.Bool("faults.keep", false, "keep the work directory (logs, databases) after the run")
)

func TestMain(m *testing.M) { testkit.Main(m) }

// bins are the binaries under test, built once per run.
var bins struct {
	once sync.Once
	dir  string
	err  error
}

// binary returns the path of a built binary: boomerang, ingest, ledger,
// segmentation, feedback or nats-server (the nats-server module's own
// command, at the version the project depends on).
func binary(t testing.TB, name string) string {
	t.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "boomerang-faults-bin-")
		if bins.err != nil {
			return
		}
		root := moduleRoot()
		for _, b := range []struct{ dir, pkg string }{
			{filepath.Join(root, "cmd"), "./boomerang"},
			{filepath.Join(root, "services", "ingest"), "./cmd/ingest"},
			{filepath.Join(root, "services", "ledger"), "./cmd/ledger"},
			{filepath.Join(root, "services", "segmentation"), "./cmd/segmentation"},
			{filepath.Join(root, "services", "feedback"), "./cmd/feedback"},
			{filepath.Join(root, "cmd"), "github.com/nats-io/nats-server/v2"},
		} {
			cmd := exec.Command("go", "build", "-o", bins.dir+string(os.PathSeparator), b.pkg)
			cmd.Dir = b.dir
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				bins.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out.String())
				return
			}
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return filepath.Join(bins.dir, name)
}

// moduleRoot is the repository root (this package is cmd/faults).
func moduleRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(filepath.Dir(wd))
}

// proc is one process under test, restartable with the same environment.
type proc struct {
	t       testing.TB
	name    string
	bin     string
	args    []string
	env     []string
	log     string
	healthz string // http://host:port/healthz, or "" to wait for tcp
	tcp     string

	mu  sync.Mutex
	cmd *exec.Cmd
}

func newProc(t testing.TB, dir, name, bin string, env []string, args ...string) *proc {
	p := &proc{t: t, name: name, bin: bin, args: args, env: append(os.Environ(), env...), log: filepath.Join(dir, name+".log")}
	t.Cleanup(func() { p.kill() })
	return p
}

// start starts the process and waits until it answers.
func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	fmt.Fprintf(f, "\n=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); f.Close() }()
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			p.t.Fatalf("%s exited at start: %v (log %s)\n%s", p.name, err, p.log, tail(p.log))
		default:
		}
		if p.up() {
			go func() { <-exited }()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("%s did not come up in 60s (log %s)\n%s", p.name, p.log, tail(p.log))
}

// up reports whether the process answers: its /healthz answers at all (a
// degraded platform still serves), or its port accepts connections.
func (p *proc) up() bool {
	if p.healthz != "" {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(p.healthz)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable
	}
	conn, err := net.DialTimeout("tcp", p.tcp, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() { p.signal(syscall.SIGKILL, 2*time.Second) }

// signal sends sig and reports whether the process was gone within d.
func (p *proc) signal(sig syscall.Signal, d time.Duration) bool {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			p.mu.Lock()
			if p.cmd == cmd {
				p.cmd = nil
			}
			p.mu.Unlock()
			return true
		}
	}
	return false
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freeAddr(t testing.TB) string {
	return "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
}

// workDir is the run's directory: removed afterwards unless -faults.keep.
func workDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "boomerang-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if *flagKeep || t.Failed() {
			t.Logf("work directory kept: %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

// redisServer is a redis-server of the test's own, so that it can be
// killed and started again empty.
func redisServer(t testing.TB, dir string) *proc {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: the distributed fault runs need it")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	p := newProc(t, dir, "redis", bin, nil, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--maxmemory-policy", "noeviction")
	p.tcp = addr
	return p
}

// natsServer is an external nats-server (the module's own command) with
// the deployment's configuration file, its JetStream store moved into dir.
func natsServer(t testing.TB, dir, conf string) (*proc, string) {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "store_dir: /data", "store_dir: "+strconv.Quote(filepath.Join(dir, "nats")), 1)
	if text == string(b) {
		t.Fatalf("%s: no store_dir: /data to move", conf)
	}
	own := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(own, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, mon := freeAddr(t), freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	_, monPort, _ := net.SplitHostPort(mon)
	p := newProc(t, dir, "nats-server", binary(t, "nats-server"), nil,
		"-c", own, "-a", host, "-p", port, "-m", monPort)
	p.tcp = addr
	return p, "nats://" + addr
}

// waitFor polls cond until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, every time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("not done after %s", d), last)
		case <-time.After(every):
		}
	}
}
