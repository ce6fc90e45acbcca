package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	redisOnce sync.Once
	redisURL  string
	redisErr  error
	redisMu   sync.Mutex
	redisDB   = 0
)

// Redis returns the URL of an empty Redis database for the test, flushed
// afterwards. Each test gets its own database number on a server shared by
// the test binary: BOOMERANG_TEST_REDIS_URL, or a throwaway redis-server.
func Redis(tb testing.TB) string {
	tb.Helper()
	redisOnce.Do(func() {
		if u := os.Getenv("BOOMERANG_TEST_REDIS_URL"); u != "" {
			redisURL = u
			return
		}
		redisURL, redisErr = startRedis()
	})
	if redisErr != nil {
		unavailable(tb, "Redis", redisErr)
	}
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		tb.Fatal(err)
	}
	redisMu.Lock()
	redisDB = redisDB%15 + 1 // 1..15; 0 is left to whoever else uses the server
	opts.DB = redisDB
	redisMu.Unlock()
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.FlushDB(ctx).Err(); err != nil {
		unavailable(tb, "Redis", err)
	}
	tb.Cleanup(func() {
		c := redis.NewClient(opts)
		defer c.Close()
		_ = c.FlushDB(context.Background()).Err()
	})
	return fmt.Sprintf("redis://%s/%d", opts.Addr, opts.DB)
}

func startRedis() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server not found (install redis-server or set BOOMERANG_TEST_REDIS_URL)")
	}
	port, err := listenFree()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "boomerang-redis-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis: %w", err)
	}
	addShared(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		os.RemoveAll(dir)
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if !waitTCP(addr, 10*time.Second) {
		return "", errors.New("throwaway redis did not start within 10s")
	}
	return "redis://" + addr + "/0", nil
}
