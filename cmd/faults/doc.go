// Package faults is Boomerang's fault suite. Its tests (build tag faults,
// run by `make chaos` and, shortened, by CI) drive the real binaries: they
// publish a seeded workload of orders, refunds, cancellations, duplicates
// and out-of-order deliveries as a shop would, kill processes with SIGKILL
// while the others stay up, restart NATS and Redis mid-load, send the
// largest, forged and strangest messages the bus accepts, and then check
// every stream, balance and customer figure against an independent
// computation from what was sent — never against the services' own Verify.
package faults
