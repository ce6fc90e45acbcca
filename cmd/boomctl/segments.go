package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	commonv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/common/v1"
	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"
)

func (a *app) segmentsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "segments",
		Short: "Ask segmentation: customer profiles, leaderboards, segments, repeat-purchase curve, the CLV model",
	}
	cmd.AddCommand(a.segmentsProfileCommand(), a.segmentsTopCommand(), a.segmentsStatsCommand(), a.segmentsMembersCommand(),
		a.segmentsCurveCommand(), a.segmentsModelCommand(), a.segmentsRefitCommand(), a.segmentsRebuildCommand(), a.segmentsValidateCommand())
	return cmd
}

// segmentationCall dials, runs one SegmentationService call and wraps its
// failure so that printError shows the status.
func segmentationCall[Resp any](a *app, cmd *cobra.Command, method string, call func(segmentationv1.SegmentationServiceClient) (Resp, error)) (Resp, error) {
	var zero Resp
	conn, err := a.dial(cmd)
	if err != nil {
		return zero, err
	}
	defer conn.Close()
	resp, err := call(segmentationv1.NewSegmentationServiceClient(conn))
	if err != nil {
		return zero, &callError{method: method, addr: a.addr, err: err}
	}
	return resp, nil
}

// parseSegment reads a segment as the CLI prints it ("at risk",
// "at-risk", "AT_RISK", "SEGMENT_AT_RISK").
func parseSegment(s string) (segmentationv1.Segment, bool) {
	key := "SEGMENT_" + strings.TrimPrefix(strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(strings.TrimSpace(s))), "SEGMENT_")
	v, ok := segmentationv1.Segment_value[key]
	if !ok || v == 0 {
		return 0, false
	}
	return segmentationv1.Segment(v), true
}

func segmentName(s segmentationv1.Segment) string { return enumName(s.String(), "SEGMENT_") }

func (a *app) segmentsProfileCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "profile CUSTOMER_ID",
		Short:   "Show a customer's features, RFM scores, segment, flags and predicted value",
		Example: "  boomctl segments profile cus_7Hq2",
		Args:    cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			resp, err := segmentationCall(a, cmd, "GetProfile", func(c segmentationv1.SegmentationServiceClient) (*segmentationv1.GetProfileResponse, error) {
				return c.GetProfile(cmd.Context(), &segmentationv1.GetProfileRequest{CustomerId: args[0]})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			return printProfile(a.stdout, resp)
		}),
	}
}

func printProfile(w io.Writer, p *segmentationv1.GetProfileResponse) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	f := p.GetFeatures()
	fmt.Fprintf(tw, "Customer:\t%s\n", p.GetCustomerId())
	fmt.Fprintf(tw, "Segment:\t%s\n", segmentName(p.GetSegment()))
	var flags []string
	for _, fl := range p.GetFlags() {
		flags = append(flags, enumName(fl.String(), "FLAG_"))
	}
	fmt.Fprintf(tw, "Flags:\t%s\n", dash(strings.Join(flags, ", ")))
	fmt.Fprintf(tw, "RFM:\tR%d F%d M%d\n", p.GetRfm().GetRecency(), p.GetRfm().GetFrequency(), p.GetRfm().GetMonetary())
	fmt.Fprintf(tw, "Orders:\t%d\n", f.GetOrders())
	fmt.Fprintf(tw, "Total value:\t%s\n", formatMoney(f.GetTotalValue()))
	fmt.Fprintf(tw, "Average order:\t%s\n", formatMoney(f.GetAverageOrderValue()))
	fmt.Fprintf(tw, "First order:\t%s\n", timestamp(f.GetFirstOrderAt()))
	fmt.Fprintf(tw, "Last order:\t%s\n", timestamp(f.GetLastOrderAt()))
	fmt.Fprintf(tw, "Discounted:\t%d (%.0f%%)\n", f.GetDiscountedOrders(), 100*f.GetDiscountedShare())
	fmt.Fprintf(tw, "Refunds:\t%d\n", f.GetRefunds())
	fmt.Fprintf(tw, "Channels:\t%s\n", dash(strings.Join(f.GetChannels(), ", ")))
	if pr := p.GetPrediction(); pr != nil {
		fmt.Fprintf(tw, "P(alive):\t%.3f\n", pr.GetPAlive())
		purchases, value := fmt.Sprintf("%.2f", pr.GetExpectedPurchases()), formatMoney(pr.GetClv())
		if iv := pr.GetExpectedPurchasesInterval(); iv != nil {
			purchases += fmt.Sprintf(" (%.2f–%.2f)", iv.GetLow(), iv.GetHigh())
		}
		if iv := pr.GetClvInterval(); iv != nil {
			value += fmt.Sprintf(" (%s–%s)", formatMoney(iv.GetLow()), formatMoney(iv.GetHigh()))
		}
		fmt.Fprintf(tw, "Expected orders:\t%s in %d days\n", purchases, pr.GetHorizonDays())
		fmt.Fprintf(tw, "Expected order value:\t%s\n", formatMoney(pr.GetExpectedOrderValue()))
		fmt.Fprintf(tw, "CLV:\t%s over %d days\n", value, pr.GetHorizonDays())
		if pr.GetClvInterval() != nil {
			fmt.Fprintf(tw, "\t(in brackets: 10th to 90th percentile, from the uncertainty of the model's parameters)\n")
		}
	} else {
		fmt.Fprintf(tw, "Prediction:\t%s\n", withheldReason(p.GetPredictionWithheld()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

func (a *app) segmentsTopCommand() *cobra.Command {
	var by string
	var limit int32
	cmd := &cobra.Command{
		Use:     "top",
		Short:   "List the customers with the highest CLV or net spend",
		Example: "  boomctl segments top --by spend --limit 20",
		Args:    cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			var ranking segmentationv1.Ranking
			switch by {
			case "clv":
				ranking = segmentationv1.Ranking_RANKING_CLV
			case "spend":
				ranking = segmentationv1.Ranking_RANKING_SPEND
			default:
				return usagef("--by: want clv or spend, got %q", by)
			}
			resp, err := segmentationCall(a, cmd, "TopCustomers", func(c segmentationv1.SegmentationServiceClient) (*segmentationv1.TopCustomersResponse, error) {
				return c.TopCustomers(cmd.Context(), &segmentationv1.TopCustomersRequest{By: ranking, Limit: limit})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			var b bytes.Buffer
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "#\tCUSTOMER\t%s\n", strings.ToUpper(by))
			for i, c := range resp.GetCustomers() {
				fmt.Fprintf(tw, "%d\t%s\t%s\n", i+1, c.GetCustomerId(), formatMoney(c.GetValue()))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = a.stdout.Write(b.Bytes())
			return err
		}),
	}
	cmd.Flags().StringVar(&by, "by", "clv", "rank by clv or spend")
	cmd.Flags().Int32Var(&limit, "limit", 10, "how many customers (1..1000)")
	return cmd
}

func (a *app) segmentsStatsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Show every segment's size, value and CLV, and the CLV distribution",
		Args:  cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			resp, err := segmentationCall(a, cmd, "GetSegmentStats", func(c segmentationv1.SegmentationServiceClient) (*segmentationv1.GetSegmentStatsResponse, error) {
				return c.GetSegmentStats(cmd.Context(), &segmentationv1.GetSegmentStatsRequest{})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			var b bytes.Buffer
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "Scored at:\t%s\n", timestamp(resp.GetScoredAt()))
			fmt.Fprintln(tw, "SEGMENT\tCUSTOMERS\tVALUE\tCLV")
			for _, s := range resp.GetSegments() {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", segmentName(s.GetSegment()), s.GetCustomers(), formatMoney(s.GetTotalValue()), formatMoney(s.GetTotalClv()))
			}
			if len(resp.GetClvDistribution()) > 0 {
				fmt.Fprintln(tw, "CLV QUANTILE\tCLV")
				for _, q := range resp.GetClvDistribution() {
					fmt.Fprintf(tw, "%g\t%s\n", q.GetQ(), formatMoney(q.GetClv()))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = a.stdout.Write(b.Bytes())
			return err
		}),
	}
}

func (a *app) segmentsMembersCommand() *cobra.Command {
	var pageSize int32
	var pageToken string
	var all bool
	cmd := &cobra.Command{
		Use:   "members SEGMENT",
		Short: "List the customers of a segment (champions, loyal, at-risk, ...), a page at a time",
		Example: `  boomctl segments members at-risk
  boomctl segments members champions --all`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			seg, ok := parseSegment(args[0])
			if !ok {
				return usagef("unknown segment %q", args[0])
			}
			token := pageToken
			for {
				resp, err := segmentationCall(a, cmd, "ListSegmentMembers", func(c segmentationv1.SegmentationServiceClient) (*segmentationv1.ListSegmentMembersResponse, error) {
					return c.ListSegmentMembers(cmd.Context(), &segmentationv1.ListSegmentMembersRequest{
						Segment: seg, Page: &commonv1.PageRequest{PageSize: pageSize, PageToken: token}})
				})
				if err != nil {
					return err
				}
				if a.jsonOutput() {
					if err := a.printJSON(resp); err != nil {
						return err
					}
				} else {
					for _, id := range resp.GetCustomerIds() {
						fmt.Fprintln(a.stdout, id)
					}
				}
				token = resp.GetPage().GetNextPageToken()
				if token == "" {
					return nil
				}
				if !all {
					if !a.jsonOutput() {
						fmt.Fprintf(a.stderr, "more: --page-token %s (or --all)\n", token)
					}
					return nil
				}
			}
		}),
	}
	cmd.Flags().Int32Var(&pageSize, "page-size", 100, "customers per page (1..1000)")
	cmd.Flags().StringVar(&pageToken, "page-token", "", "continue from the token a page ended with")
	cmd.Flags().BoolVar(&all, "all", false, "follow the pages to the end")
	return cmd
}

func (a *app) segmentsCurveCommand() *cobra.Command {
	var maxOrders int32
	cmd := &cobra.Command{
		Use:   "curve",
		Short: "Show the repeat-purchase curve: of the customers with n orders, the share who ordered again",
		Args:  cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			resp, err := segmentationCall(a, cmd, "GetRepeatPurchaseCurve", func(c segmentationv1.SegmentationServiceClient) (*segmentationv1.GetRepeatPurchaseCurveResponse, error) {
				return c.GetRepeatPurchaseCurve(cmd.Context(), &segmentationv1.GetRepeatPurchaseCurveRequest{MaxOrders: maxOrders})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			var b bytes.Buffer
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ORDERS	CUSTOMERS	ORDERED AGAIN")
			for _, pt := range resp.GetPoints() {
				fmt.Fprintf(tw, "%d	%d	%.1f%%\n", pt.GetOrders(), pt.GetCustomers(), 100*pt.GetRepeatProbability())
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = a.stdout.Write(b.Bytes())
			return err
		}),
	}
	cmd.Flags().Int32Var(&maxOrders, "max-orders", 10, "the largest n shown (1..100)")
	return cmd
}

// withheldReason says why a profile has no prediction, for a person.
func withheldReason(w segmentationv1.PredictionWithheld) string {
	switch w {
	case segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_NOT_ENOUGH_HISTORY:
		return "withheld: the shop has too little history for a model yet (boomctl segments model says how far it is)"
	case segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_UNVALUED:
		return "withheld: the model cannot value this customer"
	case segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_NO_ORDERS:
		return "none: the customer has no paid order"
	}
	return "none yet: no model has been fitted (boomctl segments refit)"
}

// withSE formats a parameter with its standard error when there is one.
func withSE(v float64, se float64, ok bool) string {
	if !ok {
		return fmt.Sprintf("%.6g", v)
	}
	return fmt.Sprintf("%.6g ± %.2g", v, se)
}

func printModel(w io.Writer, m *segmentationv1.GetModelResponse) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Fitted at:\t%s\n", timestamp(m.GetFittedAt()))
	fmt.Fprintf(tw, "Customers:\t%d (%d with repeat purchases)\n", m.GetCustomers(), m.GetRepeatCustomers())
	if m.GetUnit() != "" {
		fmt.Fprintf(tw, "Time unit:\t%s\n", m.GetUnit())
	}
	bg := m.GetBgNbd()
	bse, ok := bg.GetStandardErrors(), bg.GetStandardErrors() != nil
	fmt.Fprintf(tw, "BG/NBD:\tr=%s alpha=%s a=%s b=%s (log-likelihood %.2f)\n", withSE(bg.GetR(), bse.GetR(), ok), withSE(bg.GetAlpha(), bse.GetAlpha(), ok),
		withSE(bg.GetA(), bse.GetA(), ok), withSE(bg.GetB(), bse.GetB(), ok), bg.GetLogLikelihood())
	gg := m.GetGammaGamma()
	gse, ok := gg.GetStandardErrors(), gg.GetStandardErrors() != nil
	fmt.Fprintf(tw, "Gamma-Gamma:\tp=%s q=%s gamma=%s (log-likelihood %.2f)\n", withSE(gg.GetP(), gse.GetP(), ok), withSE(gg.GetQ(), gse.GetQ(), ok),
		withSE(gg.GetGamma(), gse.GetGamma(), ok), gg.GetLogLikelihood())
	if bg.GetStandardErrors() != nil || gg.GetStandardErrors() != nil {
		fmt.Fprintf(tw, "\t(± one standard error, from the Hessian of the log-likelihood at the optimum)\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

func (a *app) segmentsModelCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "model",
		Short: "Show the fitted BG/NBD and Gamma-Gamma parameters, their standard errors and when they were fitted",
		Args:  cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			resp, err := segmentationCall(a, cmd, "GetModel", func(c segmentationv1.SegmentationServiceClient) (*segmentationv1.GetModelResponse, error) {
				return c.GetModel(cmd.Context(), &segmentationv1.GetModelRequest{})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			return printModel(a.stdout, resp)
		}),
	}
}

// warningTrailer carries the warning of a call that succeeded with a
// caveat (segmentation's grpcapi.WarningTrailer; the platform test checks
// the two agree).
const warningTrailer = "boomerang-warning"

func (a *app) segmentsRefitCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "refit",
		Short: "Score every customer now: RFM boundaries, model fit, predictions, segments and flags (admin)",
		Long: `Score every customer now. When the customers are rescored but the models cannot be
fitted (too little history, or a fit that does not converge), the previous model stays in
use, or predictions stay withheld if there is none: boomctl prints a warning on stderr and
exits 0.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			var trailer metadata.MD
			resp, err := segmentationCall(a, cmd, "Refit", func(c segmentationv1.SegmentationServiceClient) (*segmentationv1.RefitResponse, error) {
				return c.Refit(cmd.Context(), &segmentationv1.RefitRequest{}, grpc.Trailer(&trailer))
			})
			if err != nil {
				return err
			}
			for _, w := range trailer.Get(warningTrailer) {
				fmt.Fprintf(a.stderr, "boomctl: warning: %s\n", w)
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			if resp.GetModel() == nil {
				_, err := fmt.Fprintln(a.stdout, "Customers rescored; no model fitted yet (predictions withheld).")
				return err
			}
			return printModel(a.stdout, resp.GetModel())
		}),
	}
}

func (a *app) segmentsRebuildCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rebuild-hot",
		Short: "Restore segmentation's hot store (Redis) from its SQL database now (admin)",
		Long: `Restore segmentation's hot store from SQL: profiles, leaderboards, segment membership and
counters. The service does this by itself within a minute of finding Redis flushed; this
does it now.`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			resp, err := segmentationCall(a, cmd, "RebuildHotStore", func(c segmentationv1.SegmentationServiceClient) (*segmentationv1.RebuildHotStoreResponse, error) {
				return c.RebuildHotStore(cmd.Context(), &segmentationv1.RebuildHotStoreRequest{})
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			_, err = fmt.Fprintf(a.stdout, "hot store rebuilt: %d customers\n", resp.GetCustomers())
			return err
		}),
	}
}
