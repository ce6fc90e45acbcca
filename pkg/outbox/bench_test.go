package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/boomerang-loyalty/boomerang/pkg/outbox"
	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// benchBatch is the messages one benchmark operation writes: about what a
// consumer's batch of order events produces.
const benchBatch = 100

// benchMessages returns benchBatch messages with ids unique to op.
func benchMessages(op int) []outbox.Message {
	h := nats.Header{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	msgs := make([]outbox.Message, benchBatch)
	for i := range msgs {
		msgs[i] = outbox.Message{ID: fmt.Sprintf("op%d-%d", op, i), Subject: fmt.Sprintf("t.%d", i%7), Header: h,
			Data: make([]byte, 200)}
	}
	return msgs
}

// BenchmarkAdd: one transaction writing a batch of messages, the outbox's
// share of a consumer's transaction.
func BenchmarkAdd(b *testing.B) {
	for _, d := range testkit.Databases("o.db") {
		b.Run(d.Name, func(b *testing.B) {
			db := openDB(b, d.URL(b))
			ctx := context.Background()
			testkit.TimeCalls(b, func(op int) error {
				msgs := benchMessages(op)
				return db.InTx(ctx, func(tx *sql.Tx) error {
					return outbox.Add(ctx, tx, db.Dialect, time.Now(), msgs...)
				})
			})
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkRelay: a batch of messages written, then published by the relay
// and deleted from the outbox.
func BenchmarkRelay(b *testing.B) {
	for _, d := range testkit.Databases("o.db") {
		b.Run(d.Name, func(b *testing.B) {
			db := openDB(b, d.URL(b))
			_, _, js := bus(b, 0, time.Minute)
			r, err := outbox.NewRelay(db, js, quiet, outbox.RelayOptions{Poll: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			run(b, r)
			testkit.TimeCalls(b, func(op int) error {
				add(b, db, benchMessages(op)...)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return r.Flush(ctx)
			})
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
