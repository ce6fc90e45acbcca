package testkit

import (
	"sync/atomic"
	"time"
)

// Clock is a settable clock for tests, safe for concurrent use: pass
// Clock.Now where the code under test takes a func() time.Time.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.Set(t)
	return c
}

// Now is the clock's time, in UTC.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
