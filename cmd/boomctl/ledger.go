package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	ledgerv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ledger/v1"
)

func (a *app) ledgerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Look at points accounts, redeem and adjust points, read the programme's figures",
	}
	cmd.AddCommand(a.ledgerAccountCommand(), a.ledgerEntriesCommand(), a.ledgerRedeemCommand(),
		a.ledgerAdjustCommand(), a.ledgerRewardsCommand(), a.ledgerStatsCommand())
	return cmd
}

// ledgerCall dials, runs one LedgerService call and wraps its failure so
// that printError shows the status and its field violations.
func ledgerCall[Resp any](a *app, cmd *cobra.Command, method string, call func(ledgerv1.LedgerServiceClient) (Resp, error)) (Resp, error) {
	var zero Resp
	conn, err := a.dial(cmd)
	if err != nil {
		return zero, err
	}
	defer conn.Close()
	resp, err := call(ledgerv1.NewLedgerServiceClient(conn))
	if err != nil {
		return zero, &callError{method: method, addr: a.addr, err: err}
	}
	return resp, nil
}

func (a *app) ledgerAccountCommand() *cobra.Command {
	var days int32
	cmd := &cobra.Command{
		Use:   "account CUSTOMER_ID",
		Short: "Show a customer's balance, tier, points expiring and referral code",
		Example: `  boomctl ledger account cus_7Hq2
  boomctl ledger account cus_7Hq2 --expiring-within-days 90`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			resp, err := ledgerCall(a, cmd, "GetAccount", func(c ledgerv1.LedgerServiceClient) (*ledgerv1.GetAccountResponse, error) {
				return c.GetAccount(cmd.Context(), &ledgerv1.GetAccountRequest{CustomerId: args[0], ExpiringWithinDays: days})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			return printAccount(a.stdout, resp, days)
		}),
	}
	cmd.Flags().Int32Var(&days, "expiring-within-days", 30, "report the points expiring within this many days")
	return cmd
}

func printAccount(w io.Writer, r *ledgerv1.GetAccountResponse, days int32) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Customer:\t%s\n", r.GetCustomerId())
	fmt.Fprintf(tw, "Balance:\t%d points\n", r.GetBalance())
	fmt.Fprintf(tw, "Tier:\t%s\n", dash(r.GetTier().GetName()))
	fmt.Fprintf(tw, "Qualifying spend:\t%s\n", formatMoney(r.GetTier().GetQualifyingSpend()))
	if r.GetNextTier() != "" {
		fmt.Fprintf(tw, "Next tier:\t%s, %s more spend\n", r.GetNextTier(), formatMoney(r.GetSpendToNextTier()))
	} else {
		fmt.Fprintf(tw, "Next tier:\t- (highest tier)\n")
	}
	expiring := fmt.Sprintf("%d points within %d days", r.GetPointsExpiring(), days)
	if r.GetNextExpiryAt() != nil {
		expiring += ", next on " + timestamp(r.GetNextExpiryAt())
	}
	fmt.Fprintf(tw, "Expiring:\t%s\n", expiring)
	fmt.Fprintf(tw, "Referral code:\t%s\n", dash(r.GetReferralCode()))
	fmt.Fprintf(tw, "Shortfall:\t%d points\n", r.GetShortfall())
	fmt.Fprintf(tw, "Lifetime earned:\t%d points\n", r.GetLifetimeEarned())
	return tw.Flush()
}

type entriesFlags struct {
	pageSize  int32
	pageToken string
	all       bool
}

func (a *app) ledgerEntriesCommand() *cobra.Command {
	var f entriesFlags
	cmd := &cobra.Command{
		Use:   "entries CUSTOMER_ID",
		Short: "List a customer's ledger entries, newest first",
		Long: `List the entries of a customer's points account, newest first: earnings, bonuses,
redemptions, claw-backs, expiries and adjustments, with the earned lots each one
took points from. One page at a time (--page-size, --page-token), or every page
with --all.`,
		Example: `  boomctl ledger entries cus_7Hq2
  boomctl ledger entries cus_7Hq2 --page-size 20 --page-token 118
  boomctl ledger entries cus_7Hq2 --all -o json`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			if f.pageSize < 0 {
				return usagef("--page-size: want 0 (the server's default) or more, got %d", f.pageSize)
			}
			out := &ledgerv1.ListEntriesResponse{Page: &commonv1.PageResponse{}}
			token := f.pageToken
			for {
				resp, err := ledgerCall(a, cmd, "ListEntries", func(c ledgerv1.LedgerServiceClient) (*ledgerv1.ListEntriesResponse, error) {
					return c.ListEntries(cmd.Context(), &ledgerv1.ListEntriesRequest{
						CustomerId: args[0], Page: &commonv1.PageRequest{PageSize: f.pageSize, PageToken: token},
					})
				})
				if err != nil {
					return err
				}
				out.Entries = append(out.Entries, resp.GetEntries()...)
				token = resp.GetPage().GetNextPageToken()
				if !f.all || token == "" {
					break
				}
			}
			out.Page.NextPageToken = token
			if a.jsonOutput() {
				return a.printJSON(out)
			}
			return printEntries(a.stdout, out)
		}),
	}
	fs := cmd.Flags()
	fs.Int32Var(&f.pageSize, "page-size", 0, "entries per page (0: the server's default, 50; at most 1000)")
	fs.StringVar(&f.pageToken, "page-token", "", "continue from the next-page token a previous call printed")
	fs.BoolVar(&f.all, "all", false, "follow every page to the oldest entry")
	return cmd
}

func printEntries(w io.Writer, r *ledgerv1.ListEntriesResponse) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tPOINTS\tRULE\tSOURCE\tLOTS USED\tSHORTFALL\tDETAIL")
	for _, e := range r.GetEntries() {
		var lots []string
		for _, l := range e.GetLots() {
			lots = append(lots, fmt.Sprintf("%d from %s", l.GetPoints(), l.GetLotEntryId()))
		}
		shortfall := "-"
		if e.GetShortfall() != 0 {
			shortfall = fmt.Sprint(e.GetShortfall())
		}
		fmt.Fprintf(tw, "%s\t%s\t%+d\t%s\t%s\t%s\t%s\t%s\n", timestamp(e.GetCreatedAt()), enumName(e.GetKind().String(), "ENTRY_KIND_"),
			e.GetPoints(), dash(e.GetRule()), dash(e.GetSourceRef()), dash(strings.Join(lots, ", ")), shortfall, entryDetail(e))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.GetEntries()) == 0 {
		b.Reset()
		b.WriteString("No entries.\n")
	}
	if next := r.GetPage().GetNextPageToken(); next != "" {
		fmt.Fprintf(&b, "Next page: --page-token %s\n", next)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// entryDetail is who did it and why, for the entries a person made, and
// when earned points expire. A redemption keeps its idempotency key in
// reason (its source is the reward), which is what an operator looks for.
func entryDetail(e *ledgerv1.Entry) string {
	var parts []string
	if e.GetActor() != "" {
		parts = append(parts, "by "+e.GetActor())
	}
	switch {
	case e.GetReason() == "":
	case e.GetKind() == ledgerv1.EntryKind_ENTRY_KIND_REDEEM:
		parts = append(parts, "key "+e.GetReason())
	default:
		parts = append(parts, fmt.Sprintf("%q", e.GetReason()))
	}
	if e.GetExpiresAt() != nil {
		parts = append(parts, "expires "+timestamp(e.GetExpiresAt()))
	}
	return dash(strings.Join(parts, " "))
}

// newIdempotencyKey returns a random key for a call the operator did not
// give one; it is printed so a retry can reuse it.
func newIdempotencyKey() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("idempotency key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// idempotencyKey returns --key or a new key. A new key goes to stderr
// before the call is made: when the call times out, the operator needs it
// to retry without spending points twice, and stdout stays clean for -o json.
func (a *app) idempotencyKey(key string) (string, error) {
	if key != "" {
		return key, nil
	}
	key, err := newIdempotencyKey()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(a.stderr, "boomctl: no --key given, using --key %s (retry with it to avoid doing this twice)\n", key)
	return key, nil
}

func (a *app) ledgerRedeemCommand() *cobra.Command {
	var reward, key string
	var points int64
	cmd := &cobra.Command{
		Use:   "redeem CUSTOMER_ID (--reward ID | --points N) [--key IDEMPOTENCY_KEY]",
		Short: "Spend a customer's points on a reward or a number of points",
		Long: `Redeem points (LedgerService.Redeem): either a reward of the catalogue (--reward,
see 'boomctl ledger rewards') or a number of points (--points). A retry with the
same --key returns the first redemption and spends nothing more. Without --key a
random key is made and printed on stderr.

Exits 1 when the balance is too low, the reward is out of stock or needs a
higher tier; nothing is spent then.`,
		Example: `  boomctl ledger redeem cus_7Hq2 --reward mug --key ticket-4411
  boomctl ledger redeem cus_7Hq2 --points 500 --key ticket-4412`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			hasReward, hasPoints := cmd.Flags().Changed("reward"), cmd.Flags().Changed("points")
			switch {
			case hasReward && hasPoints:
				return usagef("give --reward or --points, not both")
			case !hasReward && !hasPoints:
				return usagef("give --reward ID or --points N")
			case hasReward && strings.TrimSpace(reward) == "":
				return usagef("--reward: empty reward id")
			case hasPoints && points <= 0:
				return usagef("--points: want a positive number, got %d", points)
			}
			key, err := a.idempotencyKey(key)
			if err != nil {
				return err
			}
			req := &ledgerv1.RedeemRequest{CustomerId: args[0], IdempotencyKey: key, RewardId: strings.TrimSpace(reward), Points: points}
			resp, err := ledgerCall(a, cmd, "Redeem", func(c ledgerv1.LedgerServiceClient) (*ledgerv1.RedeemResponse, error) {
				return c.Redeem(cmd.Context(), req)
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "Redemption:\t%s\n", resp.GetRedemptionId())
			if id := resp.GetEntry().GetSourceRef(); id != "" {
				fmt.Fprintf(tw, "Reward:\t%s\n", id)
			}
			fmt.Fprintf(tw, "Points:\t%d\n", resp.GetPoints())
			fmt.Fprintf(tw, "Balance:\t%d points\n", resp.GetBalance())
			return tw.Flush()
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&reward, "reward", "", "id of the reward to redeem")
	fs.Int64Var(&points, "points", 0, "number of points to redeem")
	fs.StringVar(&key, "key", "", "idempotency key: a retry with the same key redeems once (default: a random key, printed)")
	return cmd
}

// defaultActor names the person at the terminal for the ledger's record.
func (a *app) defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return a.envOr("USER", "")
}

func (a *app) ledgerAdjustCommand() *cobra.Command {
	var reason, actor, key string
	var points int64
	cmd := &cobra.Command{
		Use:   "adjust CUSTOMER_ID --points N --reason TEXT [--actor NAME] [--key KEY]",
		Short: "Add or remove a customer's points by hand (admin)",
		Long: `Adjust a balance by hand (LedgerService.Adjust, which needs an admin token): a
positive --points adds a lot of points, a negative one removes points, oldest
first. The ledger records who (--actor, default the OS user) and why (--reason,
required). A retry with the same --key returns the first adjustment; without
--key a random key is made and printed on stderr.`,
		Example: `  boomctl ledger adjust cus_7Hq2 --points 250 --reason "late delivery, ticket 4410" --key ticket-4410
  boomctl ledger adjust cus_7Hq2 --points -100 --reason "duplicate goodwill" --key ticket-4415`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("points") || points == 0 {
				return usagef("--points is required and must not be 0 (negative removes points)")
			}
			if strings.TrimSpace(reason) == "" {
				return usagef("--reason is required: the ledger records why points were adjusted")
			}
			if !cmd.Flags().Changed("actor") {
				actor = a.defaultActor()
			}
			if strings.TrimSpace(actor) == "" {
				return usagef("--actor is required: the OS user name could not be found")
			}
			key, err := a.idempotencyKey(key)
			if err != nil {
				return err
			}
			req := &ledgerv1.AdjustRequest{CustomerId: args[0], IdempotencyKey: key, Points: points,
				Actor: strings.TrimSpace(actor), Reason: strings.TrimSpace(reason)}
			resp, err := ledgerCall(a, cmd, "Adjust", func(c ledgerv1.LedgerServiceClient) (*ledgerv1.AdjustResponse, error) {
				return c.Adjust(cmd.Context(), req)
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "Adjustment:\t%s\n", resp.GetEntry().GetEntryId())
			fmt.Fprintf(tw, "Points:\t%+d\n", resp.GetEntry().GetPoints())
			fmt.Fprintf(tw, "By:\t%s\n", resp.GetEntry().GetActor())
			fmt.Fprintf(tw, "Reason:\t%s\n", resp.GetEntry().GetReason())
			fmt.Fprintf(tw, "Balance:\t%d points\n", resp.GetBalance())
			return tw.Flush()
		}),
	}
	fs := cmd.Flags()
	fs.Int64Var(&points, "points", 0, "points to add (positive) or remove (negative)")
	fs.StringVar(&reason, "reason", "", "why, for the record (required)")
	fs.StringVar(&actor, "actor", "", "who is adjusting (default: the OS user name, else $USER)")
	fs.StringVar(&key, "key", "", "idempotency key: a retry with the same key adjusts once (default: a random key, printed)")
	return cmd
}

func (a *app) ledgerRewardsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rewards",
		Short: "List the rewards catalogue with its costs and the stock left",
		Args:  cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			resp, err := ledgerCall(a, cmd, "ListRewards", func(c ledgerv1.LedgerServiceClient) (*ledgerv1.ListRewardsResponse, error) {
				return c.ListRewards(cmd.Context(), &ledgerv1.ListRewardsRequest{})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			if len(resp.GetRewards()) == 0 {
				_, err := fmt.Fprintln(a.stdout, "No rewards in the programme.")
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REWARD\tNAME\tCOST\tTIER\tSTOCK")
			for _, r := range resp.GetRewards() {
				stock := "unlimited"
				if r.Stock != nil {
					stock = fmt.Sprint(r.GetStock())
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.GetRewardId(), r.GetName(), r.GetPointCost(), dash(r.GetRequiredTier()), stock)
			}
			return tw.Flush()
		}),
	}
}

func parsePeriod(s string) (ledgerv1.Period, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "day":
		return ledgerv1.Period_PERIOD_DAY, true
	case "week":
		return ledgerv1.Period_PERIOD_WEEK, true
	case "month":
		return ledgerv1.Period_PERIOD_MONTH, true
	}
	return ledgerv1.Period_PERIOD_UNSPECIFIED, false
}

// statsRequest reads the flags of `ledger stats`. --to names the last day
// included, as a person reads "from the 1st to the 30th"; the API's to is
// exclusive, so it gets the day after.
func statsRequest(period, from, to string) (*ledgerv1.GetProgrammeStatsRequest, error) {
	p, ok := parsePeriod(period)
	if !ok {
		return nil, usagef("--period: want day, week or month, got %q", period)
	}
	req := &ledgerv1.GetProgrammeStatsRequest{Period: p}
	if from != "" {
		t, err := time.Parse(time.DateOnly, from)
		if err != nil {
			return nil, usagef("--from: want YYYY-MM-DD, got %q", from)
		}
		req.From = timestamppb.New(t)
	}
	if to != "" {
		t, err := time.Parse(time.DateOnly, to)
		if err != nil {
			return nil, usagef("--to: want YYYY-MM-DD, got %q", to)
		}
		req.To = timestamppb.New(t.AddDate(0, 0, 1))
	}
	if req.From != nil && req.To != nil && !req.From.AsTime().Before(req.To.AsTime()) {
		return nil, usagef("--from %s is after --to %s", from, to)
	}
	return req, nil
}

func (a *app) ledgerStatsCommand() *cobra.Command {
	var period, from, to string
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show points issued, redeemed, expired and outstanding per day, week or month",
		Long: `Show the programme's figures per period (UTC days, ISO weeks from Monday, or
months): points issued (earned and bonuses), redeemed, expired, reversed by
refunds, adjusted by hand, the claw-back shortfall, and the points outstanding at
the end of each period. Only periods with movements are listed. --from and --to
are UTC days, both included; the default is the last 30 days.`,
		Example: `  boomctl ledger stats
  boomctl ledger stats --period month --from 2026-01-01 --to 2026-06-30`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			req, err := statsRequest(period, from, to)
			if err != nil {
				return err
			}
			resp, err := ledgerCall(a, cmd, "GetProgrammeStats", func(c ledgerv1.LedgerServiceClient) (*ledgerv1.GetProgrammeStatsResponse, error) {
				return c.GetProgrammeStats(cmd.Context(), req)
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			return printStats(a.stdout, resp)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&period, "period", "day", "day, week or month")
	fs.StringVar(&from, "from", "", "first day, YYYY-MM-DD (default: 30 days before --to)")
	fs.StringVar(&to, "to", "", "last day, YYYY-MM-DD, included (default: now)")
	return cmd
}

func printStats(w io.Writer, r *ledgerv1.GetProgrammeStatsResponse) error {
	var b bytes.Buffer
	if len(r.GetRows()) == 0 {
		b.WriteString("No movements in the period.\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "PERIOD\tISSUED\tREDEEMED\tEXPIRED\tREVERSED\tADJUSTED\tSHORTFALL\tOUTSTANDING\t")
		for _, row := range r.GetRows() {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%+d\t%d\t%d\t\n", row.GetPeriodStart().AsTime().UTC().Format(time.DateOnly),
				row.GetIssued(), row.GetRedeemed(), row.GetExpired(), row.GetReversed(), row.GetAdjusted(), row.GetShortfall(), row.GetOutstanding())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(&b, "Outstanding: %d points\n", r.GetOutstanding())
	_, err := w.Write(b.Bytes())
	return err
}
