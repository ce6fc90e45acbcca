package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/feedback/v1"
)

func (a *app) feedbackCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feedback",
		Short: "Submit survey responses, read NPS, CSAT and CES, work the recovery queue",
	}
	cmd.AddCommand(a.feedbackSurveyCommand(), a.feedbackScoresCommand(), a.feedbackQueueCommand(),
		a.feedbackClaimCommand(), a.feedbackResolveCommand())
	return cmd
}

// feedbackCall dials, runs one FeedbackService call and wraps its failure
// so that printError shows the status and its field violations.
func feedbackCall[Resp any](a *app, cmd *cobra.Command, method string, call func(feedbackv1.FeedbackServiceClient) (Resp, error)) (Resp, error) {
	var zero Resp
	conn, err := a.dial(cmd)
	if err != nil {
		return zero, err
	}
	defer conn.Close()
	resp, err := call(feedbackv1.NewFeedbackServiceClient(conn))
	if err != nil {
		return zero, &callError{method: method, addr: a.addr, err: err}
	}
	return resp, nil
}

func parseSurveyKind(s string) (feedbackv1.SurveyKind, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "nps":
		return feedbackv1.SurveyKind_SURVEY_KIND_NPS, true
	case "csat":
		return feedbackv1.SurveyKind_SURVEY_KIND_CSAT, true
	case "ces":
		return feedbackv1.SurveyKind_SURVEY_KIND_CES, true
	}
	return 0, false
}

func (a *app) feedbackSurveyCommand() *cobra.Command {
	var kind, customer, id, source, channel, comment, orderID, ticketID, at string
	var score int32
	cmd := &cobra.Command{
		Use:   "survey",
		Short: "Submit a survey response (NPS 0-10, CSAT 1-5, CES 1-7)",
		Long: `Submit one survey response. A detractor's NPS answer (0-6) puts the customer in
agony and on the recovery queue. A retry with the same --source and
--response-id is stored once.`,
		Example: `  boomctl feedback survey --customer cus_7Hq2 --kind nps --score 3 --comment "Late again"
  boomctl feedback survey --customer cus_7Hq2 --kind csat --score 5 --ticket-id T-81 --source typeform --response-id 991`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			k, ok := parseSurveyKind(kind)
			if !ok {
				return usagef("--kind: want nps, csat or ces, got %q", kind)
			}
			if customer == "" {
				return usagef("--customer: required")
			}
			if !cmd.Flags().Changed("score") {
				return usagef("--score: required")
			}
			when := a.now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usagef("--at: want an RFC 3339 time such as 2026-11-02T09:00:00Z, got %q", at)
				}
				when = t
			}
			if id == "" {
				raw := make([]byte, 16)
				if _, err := rand.Read(raw); err != nil {
					return err
				}
				id = hex.EncodeToString(raw)
				fmt.Fprintf(a.stderr, "no --response-id given, using --response-id %s (repeat it to retry without a duplicate)\n", id)
			}
			req := &feedbackv1.SubmitSurveyResponseRequest{ResponseId: id, Source: source, CustomerId: customer, Kind: k, Score: score,
				Channel: channel, Comment: comment, OrderId: orderID, TicketId: ticketID, RespondedAt: timestamppb.New(when)}
			resp, err := feedbackCall(a, cmd, "SubmitSurveyResponse", func(c feedbackv1.FeedbackServiceClient) (*feedbackv1.SubmitSurveyResponseResponse, error) {
				return c.SubmitSurveyResponse(cmd.Context(), req)
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			if resp.GetDuplicate() {
				fmt.Fprintf(a.stdout, "Response %s was already stored; nothing changed.\n", id)
			} else {
				fmt.Fprintf(a.stdout, "Stored response %s.\n", id)
			}
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&customer, "customer", "", "unified customer id")
	fs.StringVar(&kind, "kind", "", "survey kind: nps, csat or ces")
	fs.Int32Var(&score, "score", -1, "the answer: NPS 0-10, CSAT 1-5, CES 1-7")
	fs.StringVar(&id, "response-id", "", "the survey tool's response id (default: a random id, printed)")
	fs.StringVar(&source, "source", "boomctl", "the survey tool the response id belongs to")
	fs.StringVar(&channel, "channel", "", "where the survey was answered (email, web, app...)")
	fs.StringVar(&comment, "comment", "", "the customer's comment")
	fs.StringVar(&orderID, "order-id", "", "the order the survey is about")
	fs.StringVar(&ticketID, "ticket-id", "", "the support ticket the survey is about")
	fs.StringVar(&at, "at", "", "when it was answered, RFC 3339 (default: now)")
	return cmd
}

func parseGranularity(s string) (feedbackv1.Granularity, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "day":
		return feedbackv1.Granularity_GRANULARITY_DAY, true
	case "week":
		return feedbackv1.Granularity_GRANULARITY_WEEK, true
	case "month":
		return feedbackv1.Granularity_GRANULARITY_MONTH, true
	}
	return 0, false
}

type scoresFlags struct {
	period, tz, from, to, segment string
	bySegment                     bool
}

// scoresRequest reads the flags of `feedback scores`. Dates are local to
// --tz; --to names the last day included, so the API's exclusive to is the
// start of the day after; --from defaults to 30 days before, moved back to
// the start of its week or month.
func (a *app) scoresRequest(f scoresFlags) (*feedbackv1.GetScoresRequest, error) {
	g, ok := parseGranularity(f.period)
	if !ok {
		return nil, usagef("--period: want day, week or month, got %q", f.period)
	}
	loc, err := time.LoadLocation(f.tz)
	if err != nil {
		return nil, usagef("--tz: want an IANA time zone such as Europe/Berlin, got %q", f.tz)
	}
	today := a.now().In(loc)
	end := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, loc).AddDate(0, 0, 1)
	if f.to != "" {
		t, err := time.ParseInLocation(time.DateOnly, f.to, loc)
		if err != nil {
			return nil, usagef("--to: want YYYY-MM-DD, got %q", f.to)
		}
		end = t.AddDate(0, 0, 1)
	}
	// By default the 30 days before --to, from the start of the period
	// they begin in, so that no row covers part of its period.
	start := end.AddDate(0, 0, -30)
	switch g {
	case feedbackv1.Granularity_GRANULARITY_WEEK:
		start = start.AddDate(0, 0, -((int(start.Weekday()) + 6) % 7)) // back to Monday
	case feedbackv1.Granularity_GRANULARITY_MONTH:
		start = time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, loc)
	}
	if f.from != "" {
		t, err := time.ParseInLocation(time.DateOnly, f.from, loc)
		if err != nil {
			return nil, usagef("--from: want YYYY-MM-DD, got %q", f.from)
		}
		start = t
	}
	if !start.Before(end) {
		return nil, usagef("--from %s is after --to %s", f.from, f.to)
	}
	req := &feedbackv1.GetScoresRequest{Granularity: g, TimeZone: f.tz, From: timestamppb.New(start), To: timestamppb.New(end), BySegment: f.bySegment}
	if f.segment != "" {
		s, ok := parseSegment(f.segment)
		if !ok {
			return nil, usagef("--segment: unknown segment %q", f.segment)
		}
		req.Segment = s
	}
	return req, nil
}

func (a *app) feedbackScoresCommand() *cobra.Command {
	var f scoresFlags
	cmd := &cobra.Command{
		Use:   "scores",
		Short: "Show NPS, CSAT and CES per day, week or month, overall or per segment",
		Long: `Show the survey measures per period in a time zone: NPS (% promoters 9-10 minus
% detractors 0-6, from -100 to 100), CSAT (the share answering 4 or 5, and the
mean) and CES (the mean). A measure without responses in a period shows "-".
Segments are the customers' segments when they answered.`,
		Example: `  boomctl feedback scores
  boomctl feedback scores --period week --tz Asia/Tokyo --from 2026-09-01 --to 2026-11-30
  boomctl feedback scores --period month --by-segment
  boomctl feedback scores --segment champions -o json`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			req, err := a.scoresRequest(f)
			if err != nil {
				return err
			}
			resp, err := feedbackCall(a, cmd, "GetScores", func(c feedbackv1.FeedbackServiceClient) (*feedbackv1.GetScoresResponse, error) {
				return c.GetScores(cmd.Context(), req)
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			loc, _ := time.LoadLocation(f.tz)
			return printScores(a.stdout, resp, loc, f.bySegment)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.period, "period", "day", "day, week (from Monday) or month")
	fs.StringVar(&f.tz, "tz", "UTC", "IANA time zone of the periods")
	fs.StringVar(&f.from, "from", "", "first day, YYYY-MM-DD (default: 30 days before --to)")
	fs.StringVar(&f.to, "to", "", "last day included, YYYY-MM-DD (default: today)")
	fs.StringVar(&f.segment, "segment", "", "only this segment (champions, at-risk...)")
	fs.BoolVar(&f.bySegment, "by-segment", false, "one row per period and segment")
	return cmd
}

func measure(n int64, format string, v float64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func printScores(w io.Writer, r *feedbackv1.GetScoresResponse, loc *time.Location, bySegment bool) error {
	if len(r.GetRows()) == 0 {
		fmt.Fprintln(w, "No responses in the period.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "PERIOD\t"
	if bySegment {
		head += "SEGMENT\t"
	}
	fmt.Fprintln(tw, head+"NPS\tNPS N\tCSAT 4-5\tCSAT MEAN\tCSAT N\tCES MEAN\tCES N")
	for _, row := range r.GetRows() {
		line := row.GetPeriodStart().AsTime().In(loc).Format(time.DateOnly) + "\t"
		if bySegment {
			line += segmentName(row.GetSegment()) + "\t"
		}
		line += fmt.Sprintf("%s\t%d\t%s\t%s\t%d\t%s\t%d",
			measure(row.GetNpsResponses(), "%+.1f", row.GetNps()), row.GetNpsResponses(),
			measure(row.GetCsatResponses(), "%.0f%%", 100*row.GetCsatShareSatisfied()), measure(row.GetCsatResponses(), "%.2f", row.GetCsatMean()), row.GetCsatResponses(),
			measure(row.GetCesResponses(), "%.2f", row.GetCesMean()), row.GetCesResponses())
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func (a *app) feedbackQueueCommand() *cobra.Command {
	var limit int32
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "List the recovery queue: customers in agony, the most valuable first",
		Long: `List the open recovery cases: customers who waited too long for a first response,
left a review of 2 stars or fewer, or answered NPS as a detractor. The most
valuable customers (predicted lifetime value from segmentation) come first.`,
		Example: `  boomctl feedback queue
  boomctl feedback queue --limit 200 -o json`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			resp, err := feedbackCall(a, cmd, "ListRecoveryQueue", func(c feedbackv1.FeedbackServiceClient) (*feedbackv1.ListRecoveryQueueResponse, error) {
				return c.ListRecoveryQueue(cmd.Context(), &feedbackv1.ListRecoveryQueueRequest{Limit: limit})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			if len(resp.GetCases()) == 0 {
				fmt.Fprintln(a.stdout, "The recovery queue is empty.")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CASE\tCUSTOMER\tCLV\tREASON\tAGE\tCLAIMED BY")
			for _, c := range resp.GetCases() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.GetCaseId(), c.GetCustomerId(), formatMoney(c.GetClvValue()),
					enumName(c.GetReason().String(), "AGONY_REASON_"), c.GetAge().AsDuration().Truncate(time.Minute), dash(c.GetClaimedBy()))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().Int32Var(&limit, "limit", 50, "most cases to list (up to 1000)")
	return cmd
}

func (a *app) feedbackClaimCommand() *cobra.Command {
	var agent string
	cmd := &cobra.Command{
		Use:   "claim CASE_ID",
		Short: "Take a recovery case, so no one else works it",
		Long: `Take a recovery case, so no one else works it, or renew your claim on it. A claim
lapses after FEEDBACK_CLAIM_TTL (default 24h); then another agent may take the case.`,
		Example: "  boomctl feedback claim slow:zendesk/T-81 --agent ann",
		Args:    cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			if agent == "" {
				agent = a.defaultActor()
			}
			if agent == "" {
				return usagef("--agent: required (no user name found)")
			}
			resp, err := feedbackCall(a, cmd, "ClaimRecovery", func(c feedbackv1.FeedbackServiceClient) (*feedbackv1.ClaimRecoveryResponse, error) {
				return c.ClaimRecovery(cmd.Context(), &feedbackv1.ClaimRecoveryRequest{CaseId: args[0], Agent: agent})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			fmt.Fprintf(a.stdout, "Case %s (customer %s) is claimed by %s.\n", resp.GetCase().GetCaseId(), resp.GetCase().GetCustomerId(), resp.GetCase().GetClaimedBy())
			return nil
		}),
	}
	cmd.Flags().StringVar(&agent, "agent", "", "who works the case (default: your user name)")
	return cmd
}

func parseOutcome(s string) (feedbackv1.RecoveryOutcome, bool) {
	switch strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToLower(strings.TrimSpace(s))) {
	case "recovered":
		return feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_RECOVERED, true
	case "no_answer":
		return feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_NO_ANSWER, true
	case "lost":
		return feedbackv1.RecoveryOutcome_RECOVERY_OUTCOME_LOST, true
	}
	return 0, false
}

func (a *app) feedbackResolveCommand() *cobra.Command {
	var outcome, note, agent string
	cmd := &cobra.Command{
		Use:   "resolve CASE_ID",
		Short: "Close a recovery case with its outcome: recovered, no-answer or lost",
		Long: `Close a recovery case with its outcome. Only the agent holding the case's claim
may, or anyone once the claim has lapsed (FEEDBACK_CLAIM_TTL); an unclaimed case
is claimed by the agent who resolves it.`,
		Example: `  boomctl feedback resolve slow:zendesk/T-81 --outcome recovered --note "Refunded shipping, customer happy"
  boomctl feedback resolve nps:typeform/r-17 --outcome no-answer --agent ann`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			o, ok := parseOutcome(outcome)
			if !ok {
				return usagef("--outcome: want recovered, no-answer or lost, got %q", outcome)
			}
			if agent == "" {
				agent = a.defaultActor()
			}
			if agent == "" {
				return usagef("--agent: required (no user name found)")
			}
			resp, err := feedbackCall(a, cmd, "ResolveRecovery", func(c feedbackv1.FeedbackServiceClient) (*feedbackv1.ResolveRecoveryResponse, error) {
				return c.ResolveRecovery(cmd.Context(), &feedbackv1.ResolveRecoveryRequest{CaseId: args[0], Outcome: o, Note: note, Agent: agent})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			fmt.Fprintf(a.stdout, "Case %s resolved by %s: %s.\n", args[0], resp.GetCase().GetClaimedBy(), enumName(o.String(), "RECOVERY_OUTCOME_"))
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&outcome, "outcome", "", "recovered, no-answer or lost")
	fs.StringVar(&note, "note", "", "what was done, for the record")
	fs.StringVar(&agent, "agent", "", "who resolves the case (default: your user name)")
	return cmd
}
