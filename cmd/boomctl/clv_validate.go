package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
)

// validationBin is one row of the calibration-versus-holdout table.
type validationBin struct {
	Label     string  `json:"label"`
	Frequency int     `json:"frequency"`
	Customers int64   `json:"customers"`
	Actual    float64 `json:"actual"`
	Predicted float64 `json:"predicted"`
}

// validationSpend is the spend comparison, its values already formatted
// in the input's currency.
type validationSpend struct {
	Customers           int64  `json:"customers"`
	ActualOrderValue    string `json:"actual_order_value"`
	PredictedOrderValue string `json:"predicted_order_value"`
	ActualRevenue       string `json:"actual_revenue"`
	PredictedRevenue    string `json:"predicted_revenue"`
	// revenueError is (predicted − actual)/actual, 0 without revenue.
	revenueError float64
}

// validationView is a holdout validation as boomctl shows it, whether it
// was computed here (clv validate) or by segmentation (segments
// validate); clv validate prints it as its JSON.
type validationView struct {
	CalibrationEnd string          `json:"calibration_end"`
	HoldoutEnd     string          `json:"holdout_end"`
	Unit           string          `json:"unit"`
	HoldoutLength  float64         `json:"holdout_length"`
	Transactions   int             `json:"transactions,omitempty"`
	Customers      int64           `json:"customers"`
	BGNBD          clv.BGNBD       `json:"bgnbd"`
	GammaGamma     clv.GammaGamma  `json:"gamma_gamma"`
	Bins           []validationBin `json:"by_frequency"`
	Actual         float64         `json:"actual"`
	Predicted      float64         `json:"predicted"`
	AggregateError float64         `json:"aggregate_error"`
	MAE            float64         `json:"mae"`
	RMSE           float64         `json:"rmse"`
	Correlation    float64         `json:"correlation"`
	Tracking       clv.Tracking    `json:"tracking"`
	// Spend is nil when there was nothing to compare.
	Spend *validationSpend `json:"spend,omitempty"`
}

func newValidationView(v *clv.Validation, calibrationEnd, holdoutEnd time.Time, transactions int) validationView {
	out := validationView{
		CalibrationEnd: calibrationEnd.Format(time.DateOnly),
		HoldoutEnd:     holdoutEnd.Format(time.DateOnly),
		Unit:           v.Model.Unit.String(),
		HoldoutLength:  v.Length,
		Transactions:   transactions,
		Customers:      int64(v.Customers),
		BGNBD:          v.Model.BGNBD,
		GammaGamma:     v.Model.GammaGamma,
		Actual:         v.Actual,
		Predicted:      v.Predicted,
		AggregateError: v.AggregateError,
		MAE:            v.MAE,
		RMSE:           v.RMSE,
		Correlation:    v.Correlation,
		Tracking:       v.Tracking,
	}
	for _, b := range v.Bins {
		out.Bins = append(out.Bins, validationBin{Label: b.Label(), Frequency: b.Frequency, Customers: int64(b.Customers), Actual: b.Actual, Predicted: b.Predicted})
	}
	if s := v.Spend; s != nil {
		f := func(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
		out.Spend = &validationSpend{
			Customers: int64(s.Customers), ActualOrderValue: f(s.ActualOrderValue), PredictedOrderValue: f(s.PredictedOrderValue),
			ActualRevenue: f(s.ActualRevenue), PredictedRevenue: f(s.PredictedRevenue),
		}
		if s.ActualRevenue > 0 {
			out.Spend.revenueError = s.PredictedRevenue/s.ActualRevenue - 1
		}
	}
	return out
}

// printValidation writes the comparison as a table and a few summary
// lines.
func printValidation(w io.Writer, v validationView) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	unit := v.Unit + "s"
	fmt.Fprintf(tw, "Calibration:\tto %s, %d customers\n", v.CalibrationEnd, v.Customers)
	fmt.Fprintf(tw, "Holdout:\tto %s (%s %s)\n", v.HoldoutEnd, strconv.FormatFloat(v.HoldoutLength, 'f', -1, 64), unit)
	fmt.Fprintf(tw, "BG/NBD:\tr=%.4g alpha=%.4g a=%.4g b=%.4g\n", v.BGNBD.R, v.BGNBD.Alpha, v.BGNBD.A, v.BGNBD.B)
	fmt.Fprintf(tw, "Gamma-Gamma:\tp=%.4g q=%.4g gamma=%.4g\n", v.GammaGamma.P, v.GammaGamma.Q, v.GammaGamma.Gamma)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(&b)
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "REPEAT PURCHASES IN CALIBRATION\tCUSTOMERS\tHOLDOUT PURCHASES, ACTUAL (MEAN)\tPREDICTED (MEAN)\t")
	for _, bin := range v.Bins {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t\n", bin.Label, bin.Customers, bin.Actual, bin.Predicted)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(&b)
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Holdout purchases:\tactual %s, predicted %s (%+.1f%%)\n", strconv.FormatFloat(v.Actual, 'f', -1, 64),
		strconv.FormatFloat(v.Predicted, 'f', 1, 64), 100*v.AggregateError)
	fmt.Fprintf(tw, "Per customer:\tMAE %.3f, RMSE %.3f, correlation %.3f\n", v.MAE, v.RMSE, v.Correlation)
	t := v.Tracking
	fmt.Fprintf(tw, "Tracking (first purchases only):\tcalibration %.0f actual, %.1f expected; holdout %.0f actual, %.1f expected; cumulative %+.1f%%\n",
		t.CalibrationActual, t.CalibrationExpected, t.HoldoutActual, t.HoldoutExpected, 100*t.CumulativeError)
	if s := v.Spend; s != nil {
		fmt.Fprintf(tw, "Order value:\tactual %s, predicted %s (mean over the %d customers who bought in the holdout)\n",
			s.ActualOrderValue, s.PredictedOrderValue, s.Customers)
		fmt.Fprintf(tw, "Holdout revenue:\tactual %s, predicted %s (%+.1f%%)\n", s.ActualRevenue, s.PredictedRevenue, 100*s.revenueError)
	} else {
		fmt.Fprintf(tw, "Spend:\tnothing to compare (no purchase in the holdout, or no expected spend)\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

type clvValidateFlags struct {
	clvFitFlags
	holdoutEnd string
	plot       string
}

func (a *app) clvValidateCommand() *cobra.Command {
	var f clvValidateFlags
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Fit on a calibration period and compare the predictions with the holdout period after it",
		Long: `Fit the BG/NBD and Gamma-Gamma models to the purchases up to --calibration-end, predict
each customer's repeat purchases from then to --holdout-end (default: the last date in the
file), and compare with what the customers did: by the number of repeat purchases in
calibration (0, 1, ... 7+: customers, mean actual and mean predicted holdout purchases,
the calibration-versus-holdout comparison of the reference tools), in total, and per
customer (mean absolute error, root-mean-square error, correlation); the aggregate
tracking forecast from first-purchase dates alone; and the predicted against the actual
order value and holdout revenue. It runs offline, like clv fit, and reads the same files.

A table by default, JSON with --output json; --plot FILE.svg or FILE.png draws the
comparison by calibration frequency.`,
		Example: `  boomctl clv validate --transactions CDNOW_sample.txt --calibration-end 1997-09-30 --holdout-end 1998-06-30
  boomctl clv validate --transactions orders.csv --calibration-end 2026-03-31 --unit day --plot holdout.svg`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			return a.clvValidate(cmd, f)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.transactions, "transactions", "", `transaction file ("-" for stdin)`)
	fs.StringVar(&f.calibrationEnd, "calibration-end", "", "last day of the calibration period, YYYY-MM-DD, inclusive (required)")
	fs.StringVar(&f.holdoutEnd, "holdout-end", "", "last day of the holdout period, YYYY-MM-DD, inclusive (default: the last transaction's date)")
	fs.StringVar(&f.plot, "plot", "", "also draw the comparison to this file: .svg or .png")
	fs.StringVar(&f.unit, "unit", "week", "time unit of the models: day or week")
	fs.StringVar(&f.format, "format", "auto", "file format: auto, csv or whitespace")
	fs.IntVar(&f.customerColumn, "customer-column", 0, "column of the customer id, from 1 (default: by header name, else 1)")
	fs.IntVar(&f.dateColumn, "date-column", 0, "column of the date, from 1 (default: by header name, else the first column holding a date)")
	fs.IntVar(&f.amountColumn, "amount-column", 0, "column of the amount, from 1 (default: by header name, else the last)")
	return cmd
}

func (a *app) clvValidate(cmd *cobra.Command, f clvValidateFlags) error {
	if f.calibrationEnd == "" {
		return usagef("--calibration-end is required: the holdout period starts the day after it")
	}
	var holdoutEnd time.Time
	if f.holdoutEnd != "" {
		var err error
		if holdoutEnd, err = time.Parse(time.DateOnly, f.holdoutEnd); err != nil {
			return usagef("--holdout-end: want YYYY-MM-DD: %v", err)
		}
	}
	if err := checkPlotFile(f.plot); err != nil {
		return err
	}
	in, err := a.readTransactions(cmd, f.clvFitFlags)
	if err != nil {
		return err
	}
	if f.holdoutEnd == "" {
		holdoutEnd, _ = clv.LastDate(in.txs)
	}
	if !holdoutEnd.After(in.end) {
		return usagef("the holdout period must end after the calibration end %s, not on %s", in.end.Format(time.DateOnly), holdoutEnd.Format(time.DateOnly))
	}
	cs, hold, err := clv.SplitHoldout(in.txs, in.end, holdoutEnd, in.unit)
	if err != nil {
		return err
	}
	days := holdoutEnd.Sub(in.end).Hours() / 24
	v, err := clv.Validate(cmd.Context(), cs, hold, clv.ValidateOptions{Unit: in.unit, Length: days / in.unit.Days(), FittedAt: a.now()})
	if err != nil {
		return fmt.Errorf("validate %d customers, calibration to %s: %w", len(cs), in.end.Format(time.DateOnly), err)
	}
	view := newValidationView(v, in.end, holdoutEnd, len(in.txs))
	if f.plot != "" {
		if err := writeValidationPlot(f.plot, view); err != nil {
			return err
		}
	}
	if a.jsonOutput() {
		b, err := json.MarshalIndent(view, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the validation: %w", err)
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	return printValidation(a.stdout, view)
}
