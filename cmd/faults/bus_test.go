//go:build faults

package faults

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
)

// connect dials the bus as the shop or as an operator would, reconnecting
// for ever: the server may be the one being killed.
func connect(url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond), nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1), // a publish while disconnected fails at once and is retried by its id
	}, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(publishWindow))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

const publishWindow = 256

// publish sends msgs as a shop does, in order, a window at a time: each
// message is retried under its own Nats-Msg-Id until JetStream acknowledges
// it, so a retry is never stored twice. It spreads the sending over at
// least spread, so that faults land while the load is still coming in.
func publish(ctx context.Context, js jetstream.JetStream, msgs []shopMsg, spread time.Duration, sent *atomic.Int64) error {
	begin := time.Now()
	for start := 0; start < len(msgs); start += publishWindow {
		if due := begin.Add(time.Duration(float64(spread) * float64(start) / float64(len(msgs)))); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
		pending := msgs[start:min(start+publishWindow, len(msgs))]
		for len(pending) > 0 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var failed []shopMsg
			type inFlight struct {
				m shopMsg
				f jetstream.PubAckFuture
			}
			var futures []inFlight
			for _, m := range pending {
				f, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: m.Body,
					Header: nats.Header{jetstream.MsgIDHeader: []string{m.MsgID}, "Content-Type": []string{"application/json"}}})
				if err != nil {
					failed = append(failed, m)
					continue
				}
				futures = append(futures, inFlight{m, f})
			}
			timeout := time.After(5 * time.Second)
		wait:
			for i, x := range futures {
				select {
				case <-x.f.Ok():
				case <-x.f.Err():
					failed = append(failed, x.m)
				case <-timeout:
					for _, y := range futures[i:] {
						failed = append(failed, y.m)
					}
					break wait
				}
			}
			pending = failed
			if len(pending) > 0 {
				time.Sleep(200 * time.Millisecond)
			}
		}
		sent.Add(int64(min(publishWindow, len(msgs)-start)))
	}
	return nil
}

// streamMsg is a stored message as the checks need it.
type streamMsg struct {
	Subject string
	Header  nats.Header
	Data    []byte
	Seq     uint64
}

// readStream returns every message a stream holds.
func readStream(ctx context.Context, js jetstream.JetStream, name string) ([]streamMsg, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	n := s.CachedInfo().State.Msgs
	if n == 0 {
		return nil, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	out := make([]streamMsg, 0, n)
	for uint64(len(out)) < n {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			meta, _ := m.Metadata()
			var seq uint64
			if meta != nil {
				seq = meta.Sequence.Stream
			}
			out = append(out, streamMsg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Seq: seq})
			got++
		}
		if batch.Error() != nil {
			return nil, fmt.Errorf("read %s: %w", name, batch.Error())
		}
		if got == 0 {
			return nil, fmt.Errorf("read %s: %d of %d messages, then nothing", name, len(out), n)
		}
	}
	return out, nil
}

// drained waits until every durable consumer of every stream has nothing
// pending or unacknowledged and the streams stop growing, twice in a row.
func drained(ctx context.Context, js jetstream.JetStream, d time.Duration) error {
	var last string
	stable := 0
	return waitFor(ctx, d, time.Second, func(ctx context.Context) (bool, error) {
		state := ""
		busy := ""
		streams := js.ListStreams(ctx)
		for info := range streams.Info() {
			state += fmt.Sprintf("%s=%d ", info.Config.Name, info.State.LastSeq)
			s, err := js.Stream(ctx, info.Config.Name)
			if err != nil {
				return false, err
			}
			cons := s.ListConsumers(ctx)
			for ci := range cons.Info() {
				if ci.NumPending > 0 || ci.NumAckPending > 0 || ci.NumRedelivered > 0 && ci.NumAckPending > 0 {
					busy += fmt.Sprintf("%s/%s pending %d ack-pending %d; ", info.Config.Name, ci.Name, ci.NumPending, ci.NumAckPending)
				}
			}
			if err := cons.Err(); err != nil {
				return false, err
			}
		}
		if err := streams.Err(); err != nil {
			return false, err
		}
		if busy != "" || state != last {
			last, stable = state, 0
			if busy != "" {
				return false, fmt.Errorf("busy: %s", busy)
			}
			return false, nil
		}
		stable++
		return stable >= 2, nil
	})
}

type grpcClient struct{ conn *grpc.ClientConn }
