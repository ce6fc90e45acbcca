// Command boomctl is the operator's command line for a running Boomerang:
// it submits orders and looks them up through the gRPC API, and follows
// subjects on the JetStream bus to watch what the platform produces.
//
// Exit status: 0 on success, 1 when a call failed or an order was rejected
// (`orders import` counts rejected rows in its summary and exits 1 only
// when it stopped early), 2 on a usage error (bad flags or arguments).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
)

// Defaults match the single-process runner (cmd/boomerang), so a newcomer's
// boomctl talks to their `make run` without any flag.
const (
	defaultAddr      = "127.0.0.1:7443"
	defaultTokenFile = "data/admin.token"
	defaultNATSURL   = "nats://127.0.0.1:4223"
	// The operator's NATS user and the password the runner generates.
	defaultNATSUser         = "admin"
	defaultNATSPasswordFile = "data/nats-admin.password"
	defaultTimeout          = 10 * time.Second
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one boomctl invocation and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newApp(config.Environ(), stdout, stderr).execute(ctx, args)
}

// app is one invocation: where it writes, what it reads the environment
// from, and the global flags.
type app struct {
	env    config.Source
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time

	addr               string
	token              string
	tokenFile          string
	tls                bool
	insecureSkipVerify bool
	timeout            time.Duration
	output             string

	// started is set once a command's own work begins: errors before that
	// are cobra's parsing errors, that is usage errors.
	started bool
}

func newApp(env config.Source, stdout, stderr io.Writer) *app {
	return &app{env: env, stdout: stdout, stderr: stderr, now: time.Now}
}

// usageError is a mistake in the command line rather than a failure of
// the work asked for; it exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errRejected reports that the call worked but the platform turned down
// at least one order; the details are already on stdout.
var errRejected = errors.New("rejected")

func (a *app) execute(ctx context.Context, args []string) int {
	return a.executeCommand(ctx, a.rootCommand(), args)
}

// executeCommand runs root, built by rootCommand, and maps the outcome to
// an exit code; tests call it to give the command its own stdin.
func (a *app) executeCommand(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var uerr *usageError
	if !a.started || errors.As(err, &uerr) {
		fmt.Fprintf(a.stderr, "boomctl: %v\n", err)
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	a.printError(err)
	return exitFailure
}

// rootCommand builds the command tree afresh for each invocation, so flag
// values never leak between runs (tests run many in one process).
func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "boomctl",
		Short: "Operate a running Boomerang: submit and inspect orders, manage points, follow the event bus",
		Long: `boomctl talks to a running Boomerang over gRPC (orders, points ledger) and NATS JetStream (events).

Without flags it reaches the single-process runner started by 'make run':
gRPC on ` + defaultAddr + ` with the admin token from ` + defaultTokenFile + `,
NATS on ` + defaultNATSURL + ` as user ` + defaultNATSUser + ` with the password in ` + defaultNATSPasswordFile + `.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if a.output != "text" && a.output != "json" {
				return usagef("--output: want text or json, got %q", a.output)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })

	f := root.PersistentFlags()
	f.StringVar(&a.addr, "addr", a.envOr("BOOMCTL_ADDR", defaultAddr), "gRPC address of Boomerang (env BOOMCTL_ADDR)")
	// The token's default is resolved when it is needed, never shown in
	// --help: help output ends up in terminals and bug reports.
	f.StringVar(&a.token, "token", "", "API bearer token (default: env BOOMCTL_TOKEN, else the contents of --token-file)")
	f.StringVar(&a.tokenFile, "token-file", defaultTokenFile, "file holding the API token, used when --token and BOOMCTL_TOKEN are unset")
	f.BoolVar(&a.tls, "tls", false, "dial with TLS")
	f.BoolVar(&a.insecureSkipVerify, "insecure-skip-verify", false, "with --tls, do not verify the server certificate (development only)")
	f.DurationVar(&a.timeout, "timeout", defaultTimeout, "deadline of each gRPC call")
	f.StringVarP(&a.output, "output", "o", "text", "output format: text (for people) or json (protojson, for scripts)")

	root.AddCommand(a.ordersCommand(), a.eventsCommand(), a.clvCommand(), a.ledgerCommand(), a.segmentsCommand(), a.feedbackCommand(), a.customersCommand(), a.outboxCommand())
	return root
}

// runE marks the point where a command's own work starts; see app.started.
func (a *app) runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		return fn(cmd, args)
	}
}

func (a *app) envOr(name, def string) string {
	if v, ok := a.env(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

// resolveToken picks the token: --token, then BOOMCTL_TOKEN, then the
// token file. A missing default token file is not an error: the server may
// not require a token, and if it does its Unauthenticated says so.
func (a *app) resolveToken(cmd *cobra.Command) (string, error) {
	if a.token != "" {
		return a.token, nil
	}
	if v := a.envOr("BOOMCTL_TOKEN", ""); v != "" {
		return v, nil
	}
	b, err := os.ReadFile(a.tokenFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !cmd.Flags().Changed("token-file") {
			return "", nil
		}
		return "", fmt.Errorf("token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (a *app) dial(cmd *cobra.Command) (*grpc.ClientConn, error) {
	token, err := a.resolveToken(cmd)
	if err != nil {
		return nil, err
	}
	return grpcx.Dial(a.addr, grpcx.ClientOptions{
		Token:              token,
		TLS:                a.tls,
		InsecureSkipVerify: a.insecureSkipVerify,
		DefaultTimeout:     a.timeout,
	})
}

func (a *app) jsonOutput() bool { return a.output == "json" }

// printJSON writes m as indented protojson.
func (a *app) printJSON(m proto.Message) error {
	b, err := indentedProtoJSON(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// indentedProtoJSON renders m as protojson re-indented by encoding/json:
// protojson varies its whitespace on purpose, and output that scripts diff
// or grep should not change from one build to the next.
func indentedProtoJSON(m proto.Message) ([]byte, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, fmt.Errorf("indent %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return out.Bytes(), nil
}

// callError is a failed gRPC call; it keeps the status so that its
// details (field violations above all) can be printed for a person.
type callError struct {
	method string
	addr   string
	err    error
}

func (e *callError) Error() string { return e.method + ": " + e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

func (a *app) printError(err error) {
	if errors.Is(err, errRejected) {
		fmt.Fprintf(a.stderr, "boomctl: %v\n", err)
		return
	}
	var ce *callError
	if !errors.As(err, &ce) {
		fmt.Fprintf(a.stderr, "boomctl: %v\n", err)
		return
	}
	fmt.Fprint(a.stderr, describeCallError(ce))
}

// describeCallError renders a gRPC failure as a few readable lines: the
// code and message, every field violation on its own line, and a hint for
// the failures an operator most often meets.
func describeCallError(ce *callError) string {
	st, ok := status.FromError(ce.err)
	if !ok {
		return fmt.Sprintf("boomctl: %s: %v\n", ce.method, ce.err)
	}
	var details []string
	msg := st.Message()
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			var fvs []grpcx.FieldViolation
			for _, fv := range d.GetFieldViolations() {
				fvs = append(fvs, grpcx.FieldViolation{Field: fv.GetField(), Description: fv.GetDescription()})
				details = append(details, fv.GetField()+": "+fv.GetDescription())
			}
			// Boomerang's servers repeat the violations in the message
			// (grpcx.InvalidArgument); one line each below is enough.
			if summary := grpcx.Summary(fvs); summary != "" && strings.HasSuffix(msg, summary) && msg != summary {
				msg = strings.TrimSuffix(strings.TrimSuffix(msg, summary), ": ")
			}
		case *errdetails.ErrorInfo:
			details = append(details, "reason: "+d.GetReason())
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "boomctl: %s: %s: %s\n", ce.method, st.Code(), msg)
	for _, d := range details {
		fmt.Fprintf(&b, "  %s\n", d)
	}
	switch st.Code() {
	case codes.Unauthenticated:
		b.WriteString("  hint: pass --token, set BOOMCTL_TOKEN, or point --token-file at the token (the runner writes data/admin.token)\n")
	case codes.PermissionDenied:
		b.WriteString("  hint: the token lacks the scope this call needs\n")
	case codes.Unavailable:
		fmt.Fprintf(&b, "  hint: is Boomerang running at %s? (--addr, BOOMCTL_ADDR; --tls if it serves TLS)\n", ce.addr)
	}
	return b.String()
}
