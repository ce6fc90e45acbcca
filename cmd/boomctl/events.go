package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/pkg/orderbus"
	// Imported for their registration: follow decodes payloads by the
	// message type named in the Boomerang-Type header.
	_ "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"
	_ "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/orders/v1"
)

func (a *app) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Watch the JetStream event bus",
	}
	cmd.AddCommand(a.eventsFollowCommand())
	return cmd
}

type followOptions struct {
	natsURL    string
	natsUser   string
	password   string
	pwFile     string
	credsFile  string
	stream     string
	from       string
	limit      int
	allHeaders bool
}

// headersOfInterest are the headers shown by default: the message id that
// deduplicates, what the payload is, and why a dead letter was rejected.
func headersOfInterest() []string {
	return []string{
		jetstream.MsgIDHeader,
		natsx.HeaderEventType,
		orderbus.HeaderReason,
		orderbus.HeaderError,
		orderbus.HeaderOriginalSubject,
	}
}

func (a *app) eventsFollowCommand() *cobra.Command {
	o := followOptions{}
	cmd := &cobra.Command{
		Use:   "follow SUBJECT",
		Short: "Print the messages on a subject as they arrive, until Ctrl-C",
		Long: `Follow a subject (wildcards allowed) through a JetStream ordered consumer, which is
ephemeral and leaves nothing behind on the server, and print each message: its
subject, the headers of interest (Nats-Msg-Id, Boomerang-Type, Boomerang-Reason,
Boomerang-Error) and the payload. A payload whose Boomerang-Type names a known
protobuf message (boomerang.orders.v1.OrderEvent above all) is printed as protobuf
JSON; any other payload as text, or as a hex dump when it is not UTF-8.

With --output json, each message is one JSON object per line.`,
		Example: `  boomctl events follow 'boomerang.orders.v1.>'
  boomctl events follow 'boomerang.deadletter.ingest.>' --from all
  boomctl events follow boomerang.ingest.orders.shop-eu --stream INGEST`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			return a.follow(cmd.Context(), cmd, args[0], o)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&o.natsURL, "nats", a.envOr("NATS_URL", defaultNATSURL), "NATS server URL (env NATS_URL)")
	fs.StringVar(&o.natsUser, "nats-user", a.envOr("NATS_USER", defaultNATSUser), "NATS user (env NATS_USER)")
	// Like --token, the password's default is never shown in --help.
	fs.StringVar(&o.password, "nats-password", "", "NATS password (default: env NATS_PASSWORD, else the contents of --nats-password-file)")
	fs.StringVar(&o.pwFile, "nats-password-file", defaultNATSPasswordFile, "file holding the NATS password, used when --nats-password and NATS_PASSWORD are unset")
	fs.StringVar(&o.credsFile, "nats-creds", a.envOr("NATS_CREDS", ""), "NATS credentials file (JWT and nkey) instead of a password (env NATS_CREDS)")
	fs.StringVar(&o.stream, "stream", "", "stream to read (default: the stream that captures SUBJECT)")
	fs.StringVar(&o.from, "from", "new", "where to start: new (only messages from now on) or all (everything the stream holds)")
	fs.IntVar(&o.limit, "limit", 0, "stop after this many messages (0: until Ctrl-C)")
	fs.BoolVar(&o.allHeaders, "all-headers", false, "print every header, not only those of interest")
	return cmd
}

// natsCredentials picks the password like resolveToken picks the token:
// --nats-password, then NATS_PASSWORD, then the password file. A missing
// default file is not an error: the server may not ask for one, and if it
// does its authorization violation says so.
func (a *app) natsCredentials(cmd *cobra.Command, o followOptions) (natsx.Credentials, error) {
	c := natsx.Credentials{CredsFile: o.credsFile}
	password := o.password
	if password == "" {
		password = a.envOr("NATS_PASSWORD", "")
	}
	if password == "" && o.credsFile == "" {
		b, err := os.ReadFile(o.pwFile)
		switch {
		case errors.Is(err, os.ErrNotExist) && !cmd.Flags().Changed("nats-password-file"):
		case err != nil:
			return c, fmt.Errorf("NATS password file: %w", err)
		default:
			password = strings.TrimSpace(string(b))
		}
	}
	if password != "" {
		c.User, c.Password = o.natsUser, password
	}
	return c, nil
}

func (a *app) follow(ctx context.Context, cmd *cobra.Command, subject string, o followOptions) error {
	var deliver jetstream.DeliverPolicy
	switch o.from {
	case "new":
		deliver = jetstream.DeliverNewPolicy
	case "all":
		deliver = jetstream.DeliverAllPolicy
	default:
		return usagef("--from: want new or all, got %q", o.from)
	}
	if o.limit < 0 {
		return usagef("--limit: want 0 or more, got %d", o.limit)
	}
	creds, err := a.natsCredentials(cmd, o)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(o.natsURL, append(creds.Options(), nats.Name("boomctl"), nats.Timeout(a.timeout))...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s (--nats, NATS_URL): %w", o.natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	setupCtx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	stream := o.stream
	if stream == "" {
		stream, err = js.StreamNameBySubject(setupCtx, subject)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("no stream captures %q; name one with --stream", subject)
		}
		if err != nil {
			return fmt.Errorf("find the stream of %q: %w", subject, err)
		}
	}
	cons, err := js.OrderedConsumer(setupCtx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  deliver,
	})
	if ctx.Err() != nil {
		// Ctrl-C while the consumer was being set up ends following too.
		return nil
	}
	if err != nil {
		return fmt.Errorf("consumer on stream %s for %q: %w", stream, subject, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %q: %w", subject, err)
	}
	defer msgs.Stop()

	for n := 0; o.limit == 0 || n < o.limit; n++ {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			// Ctrl-C is how following normally ends.
			return nil
		}
		if err != nil {
			return fmt.Errorf("follow %q: %w", subject, err)
		}
		if err := a.printMessage(msg, o.allHeaders); err != nil {
			return err
		}
	}
	return nil
}

// followedMessage is a message as --output json prints it, one per line.
type followedMessage struct {
	Subject       string            `json:"subject"`
	Stream        string            `json:"stream,omitempty"`
	Sequence      uint64            `json:"sequence,omitempty"`
	Time          string            `json:"time,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64 []byte            `json:"payloadBase64,omitempty"`
	DecodeError   string            `json:"decodeError,omitempty"`
}

func (a *app) printMessage(msg jetstream.Msg, allHeaders bool) error {
	fm := followedMessage{Subject: msg.Subject(), Headers: map[string]string{}}
	if md, err := msg.Metadata(); err == nil {
		fm.Stream, fm.Sequence = md.Stream, md.Sequence.Stream
		fm.Time = md.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	h := msg.Headers()
	var names []string
	if allHeaders {
		for k := range h {
			names = append(names, k)
		}
		slices.Sort(names)
	} else {
		names = headersOfInterest()
	}
	for _, k := range names {
		if v := h.Get(k); v != "" {
			fm.Headers[k] = v
		}
	}
	decoded, decodeErr := decodePayload(h.Get(natsx.HeaderEventType), msg.Data())
	if decodeErr != nil {
		fm.DecodeError = decodeErr.Error()
	}

	if a.jsonOutput() {
		switch {
		case decoded != nil:
			fm.Payload = decoded
		case utf8.Valid(msg.Data()):
			fm.Payload, _ = json.Marshal(string(msg.Data()))
		default:
			fm.PayloadBase64 = msg.Data()
		}
		b, err := json.Marshal(fm)
		if err != nil {
			return fmt.Errorf("encode message: %w", err)
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}

	w := a.stdout
	fmt.Fprintf(w, "--- %s", fm.Subject)
	if fm.Stream != "" {
		fmt.Fprintf(w, "  (%s #%d, %s)", fm.Stream, fm.Sequence, fm.Time)
	}
	fmt.Fprintln(w)
	for _, k := range names {
		if v, ok := fm.Headers[k]; ok {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
	if fm.DecodeError != "" {
		fmt.Fprintf(w, "(%s; raw payload follows)\n", fm.DecodeError)
	}
	return writePayload(w, decoded, msg.Data())
}

// decodePayload renders a protobuf payload as indented protojson when
// typeName names a message this binary knows. It returns nil, nil for a
// payload that is not a known protobuf message.
func decodePayload(typeName string, data []byte) (json.RawMessage, error) {
	if typeName == "" {
		return nil, nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typeName))
	if err != nil {
		return nil, nil //nolint:nilerr // an unknown type is shown raw, not an error
	}
	m := mt.New().Interface()
	if err := (proto.UnmarshalOptions{}).Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("cannot decode as %s: %w", typeName, err)
	}
	return indentedProtoJSON(m)
}

func writePayload(w io.Writer, decoded json.RawMessage, data []byte) error {
	var err error
	switch {
	case decoded != nil:
		_, err = fmt.Fprintf(w, "%s\n", decoded)
	case utf8.Valid(data):
		_, err = fmt.Fprintf(w, "%s\n", data)
	default:
		_, err = fmt.Fprintf(w, "(%d bytes, not UTF-8)\n%s", len(data), hex.Dump(data))
	}
	return err
}
