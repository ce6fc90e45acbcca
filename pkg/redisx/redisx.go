// Package redisx opens Redis clients from a URL.
package redisx

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Open parses a redis:// or rediss:// URL, connects and pings.
func Open(ctx context.Context, url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis %s: %w", opts.Addr, err)
	}
	return c, nil
}
