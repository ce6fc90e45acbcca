package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	outboxv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/outbox/v1"
)

func (a *app) outboxCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Look at and act on what a service's outbox could not publish",
	}
	cmd.AddCommand(a.outboxParkedCommand())
	return cmd
}

// parkedReasons are the reasons an outbox relay parks a message, as
// --reason takes them.
const parkedReasons = "too_large, no_stream, bad_headers or bad_subject"

func (a *app) outboxParkedCommand() *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "parked",
		Short: "List, count, requeue and drop the messages a service's outbox relay parked (admin)",
		Long: `Each service writes the events it publishes to an outbox in its own database; its
relay publishes them to NATS. A message the relay can never publish as it is —
too large for the bus (too_large), no stream takes its subject (no_stream), its
headers (bad_headers) or subject (bad_subject) are malformed — is parked, so that
the messages behind it flow on. These commands reach the parked messages of one
service (--service: ingest, ledger, segmentation or feedback) through
OutboxAdminService, which needs an admin token. Payloads are never shown: a
parked message may hold customer data; its size and SHA-256 identify it.`,
	}
	cmd.PersistentFlags().StringVar(&service, "service", "", "the service whose outbox to use: ingest, ledger, segmentation or feedback (required)")
	_ = cmd.MarkPersistentFlagRequired("service")
	cmd.AddCommand(a.parkedListCommand(&service), a.parkedStatsCommand(&service),
		a.parkedRequeueCommand(&service), a.parkedDropCommand(&service))
	return cmd
}

// outboxCall dials, runs one OutboxAdminService call and wraps its failure
// so that printError shows the status and its field violations.
func outboxCall[Resp any](a *app, cmd *cobra.Command, method string, call func(outboxv1.OutboxAdminServiceClient) (Resp, error)) (Resp, error) {
	var zero Resp
	conn, err := a.dial(cmd)
	if err != nil {
		return zero, err
	}
	defer conn.Close()
	resp, err := call(outboxv1.NewOutboxAdminServiceClient(conn))
	if err != nil {
		return zero, &callError{method: method, addr: a.addr, err: err}
	}
	return resp, nil
}

func (a *app) parkedListCommand(service *string) *cobra.Command {
	var (
		f      entriesFlags
		reason string
	)
	cmd := &cobra.Command{
		Use:   "list --service SERVICE [--reason REASON]",
		Short: "List a service's parked messages, oldest parked first",
		Long: `List a service's parked messages, oldest parked first: id, subject, why it was
parked and the error that decided it, the payload's size and SHA-256 (the first
12 hex digits; -o json has all 64). One page at a time (--page-size,
--page-token), or every page with --all.`,
		Example: `  boomctl outbox parked list --service ledger
  boomctl outbox parked list --service ingest --reason too_large --all -o json`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			if f.pageSize < 0 {
				return usagef("--page-size: want 0 (the server's default) or more, got %d", f.pageSize)
			}
			out := &outboxv1.ListParkedResponse{Page: &commonv1.PageResponse{}}
			token := f.pageToken
			for {
				resp, err := outboxCall(a, cmd, "ListParked", func(c outboxv1.OutboxAdminServiceClient) (*outboxv1.ListParkedResponse, error) {
					return c.ListParked(cmd.Context(), &outboxv1.ListParkedRequest{
						Service: *service, Reason: reason, Page: &commonv1.PageRequest{PageSize: f.pageSize, PageToken: token},
					})
				})
				if err != nil {
					return err
				}
				out.Messages = append(out.Messages, resp.GetMessages()...)
				token = resp.GetPage().GetNextPageToken()
				if !f.all || token == "" {
					break
				}
			}
			out.Page.NextPageToken = token
			if a.jsonOutput() {
				return a.printJSON(out)
			}
			return printParked(a.stdout, out)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&reason, "reason", "", "only messages parked for this reason: "+parkedReasons)
	fs.Int32Var(&f.pageSize, "page-size", 0, "messages per page (0: the server's default, 50; at most 1000)")
	fs.StringVar(&f.pageToken, "page-token", "", "continue from the next-page token a previous call printed")
	fs.BoolVar(&f.all, "all", false, "follow every page to the most recently parked message")
	return cmd
}

func printParked(w io.Writer, r *outboxv1.ListParkedResponse) error {
	var b bytes.Buffer
	if len(r.GetMessages()) == 0 {
		b.WriteString("No parked messages.\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PARKED AT\tID\tSUBJECT\tREASON\tBYTES\tSHA-256\tERROR")
		for _, m := range r.GetMessages() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", timestamp(m.GetParkedAt()), m.GetId(), m.GetSubject(), m.GetReason(),
				m.GetSizeBytes(), shortDigest(m.GetSha256()), dash(m.GetError()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if next := r.GetPage().GetNextPageToken(); next != "" {
		fmt.Fprintf(&b, "Next page: --page-token %s\n", next)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// shortDigest is enough of a hex digest to tell payloads apart at a
// glance, as git shortens commit ids.
func shortDigest(hex string) string {
	if len(hex) <= 12 {
		return dash(hex)
	}
	return hex[:12]
}

func (a *app) parkedStatsCommand(service *string) *cobra.Command {
	return &cobra.Command{
		Use:     "stats --service SERVICE",
		Short:   "Count a service's parked messages by reason, with the oldest",
		Example: `  boomctl outbox parked stats --service ledger`,
		Args:    cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			resp, err := outboxCall(a, cmd, "GetParkedStats", func(c outboxv1.OutboxAdminServiceClient) (*outboxv1.GetParkedStatsResponse, error) {
				return c.GetParkedStats(cmd.Context(), &outboxv1.GetParkedStatsRequest{Service: *service})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			return printParkedStats(a.stdout, *service, resp)
		}),
	}
}

func printParkedStats(w io.Writer, service string, r *outboxv1.GetParkedStatsResponse) error {
	if r.GetTotal() == 0 {
		_, err := fmt.Fprintf(w, "No parked messages in the %s outbox.\n", service)
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Parked in the %s outbox: %d, the oldest for %s (since %s)\n", service, r.GetTotal(),
		r.GetOldestAge().AsDuration().Truncate(time.Second), timestamp(r.GetOldestParkedAt()))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REASON\tCOUNT\tOLDEST PARKED AT")
	for _, rs := range r.GetReasons() {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", rs.GetReason(), rs.GetCount(), timestamp(rs.GetOldestParkedAt()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

func (a *app) parkedRequeueCommand(service *string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "requeue --service SERVICE (ID... | --reason REASON)",
		Short: "Move parked messages back to the outbox for another try",
		Long: `Move parked messages back to the end of the service's outbox, in the order they
were first written, once the cause is gone (a stream created, the bus's max
payload raised): the ids given, or every message parked for --reason. The relay
publishes each with its own id, so consumers still see it once; a message whose
cause remains is parked again.

Exits 1 when an id given was not parked; the others are requeued.`,
		Example: `  boomctl outbox parked requeue --service ledger dl-6f2a9c41e0b7
  boomctl outbox parked requeue --service ingest --reason no_stream`,
		RunE: a.runE(func(cmd *cobra.Command, ids []string) error {
			switch {
			case len(ids) > 0 && reason != "":
				return usagef("give ids or --reason, not both")
			case len(ids) == 0 && reason == "":
				return usagef("give the ids to requeue, or --reason to requeue every message parked for it")
			}
			resp, err := outboxCall(a, cmd, "RequeueParked", func(c outboxv1.OutboxAdminServiceClient) (*outboxv1.RequeueParkedResponse, error) {
				return c.RequeueParked(cmd.Context(), &outboxv1.RequeueParkedRequest{Service: *service, Ids: ids, Reason: reason})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				err = a.printJSON(resp)
			} else {
				_, err = fmt.Fprintf(a.stdout, "Requeued %d of the %s outbox's parked messages.\n", resp.GetRequeued(), *service)
			}
			if err != nil {
				return err
			}
			return notParked(len(ids), resp.GetNotParked())
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "requeue every message parked for this reason: "+parkedReasons)
	return cmd
}

func (a *app) parkedDropCommand(service *string) *cobra.Command {
	var reason, actor string
	cmd := &cobra.Command{
		Use:   "drop --service SERVICE ID... --reason TEXT [--actor NAME]",
		Short: "Delete parked messages for good (logged with who and why)",
		Long: `Delete parked messages for good. The service logs each one dropped (id, subject,
why it was parked, size, SHA-256) with who dropped it (--actor, default the OS
user) and why (--reason, required: the operator's reason, not the one it was
parked for). List them first: nothing brings a dropped message back.

Exits 1 when an id given was not parked; the others are dropped.`,
		Example: `  boomctl outbox parked drop --service ledger dl-6f2a9c41e0b7 --reason "test order, ticket 4410"`,
		Args:    cobra.MinimumNArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, ids []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("--reason is required: the service logs why messages were dropped")
			}
			if !cmd.Flags().Changed("actor") {
				actor = a.defaultActor()
			}
			if strings.TrimSpace(actor) == "" {
				return usagef("--actor is required: the OS user name could not be found")
			}
			req := &outboxv1.DropParkedRequest{Service: *service, Ids: ids, Actor: strings.TrimSpace(actor), Reason: strings.TrimSpace(reason)}
			resp, err := outboxCall(a, cmd, "DropParked", func(c outboxv1.OutboxAdminServiceClient) (*outboxv1.DropParkedResponse, error) {
				return c.DropParked(cmd.Context(), req)
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				err = a.printJSON(resp)
			} else {
				_, err = fmt.Fprintf(a.stdout, "Dropped %d of the %s outbox's parked messages.\n", resp.GetDropped(), *service)
			}
			if err != nil {
				return err
			}
			return notParked(len(ids), resp.GetNotParked())
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&reason, "reason", "", "why you drop them, for the log (required)")
	fs.StringVar(&actor, "actor", "", "who is dropping them (default: the OS user name, else $USER)")
	return cmd
}

// notParked fails the command when ids given were not parked; the call
// did what it could with the others.
func notParked(asked int, missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d ids not parked (requeued or dropped before, or never parked): %s",
		len(missing), asked, strings.Join(missing, ", "))
}
