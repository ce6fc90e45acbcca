package main

import (
	"time"

	"github.com/spf13/cobra"

	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"
	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
)

func (a *app) segmentsValidateCommand() *cobra.Command {
	var calibrationEnd, holdoutEnd, plotFile string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the models on live data: fit up to a day, compare the predictions with the days after it (admin)",
		Long: `Ask segmentation to fit the BG/NBD and Gamma-Gamma models on every customer's purchases up
to --calibration-end and to compare what they predict for the days after it, up to
--holdout-end (default: the latest purchase), with what the customers bought: by the number
of repeat purchases in calibration (0, 1, ... 7+), in total, and per customer (mean absolute
error, root-mean-square error, correlation), the tracking forecast from first purchases, and
order value and revenue. The model in use is left as it is. Days are UTC.

A table by default, protojson with --output json; --plot FILE.svg or FILE.png draws the
comparison by calibration frequency. The same check runs offline on a file with clv validate.`,
		Example: `  boomctl segments validate --calibration-end 2026-03-31
  boomctl segments validate --calibration-end 2026-03-31 --holdout-end 2026-06-30 --plot holdout.png`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			if calibrationEnd == "" {
				return usagef("--calibration-end is required: the holdout period starts the day after it")
			}
			for name, v := range map[string]string{"--calibration-end": calibrationEnd, "--holdout-end": holdoutEnd} {
				if _, err := time.Parse(time.DateOnly, v); v != "" && err != nil {
					return usagef("%s: want YYYY-MM-DD: %v", name, err)
				}
			}
			if err := checkPlotFile(plotFile); err != nil {
				return err
			}
			resp, err := segmentationCall(a, cmd, "ValidateModel", func(c segmentationv1.SegmentationServiceClient) (*segmentationv1.ValidateModelResponse, error) {
				return c.ValidateModel(cmd.Context(), &segmentationv1.ValidateModelRequest{CalibrationEnd: calibrationEnd, HoldoutEnd: holdoutEnd})
			})
			if err != nil {
				return err
			}
			view := validationViewOf(resp)
			if plotFile != "" {
				if err := writeValidationPlot(plotFile, view); err != nil {
					return err
				}
			}
			if a.jsonOutput() {
				return a.printJSON(resp)
			}
			return printValidation(a.stdout, view)
		}),
	}
	cmd.Flags().StringVar(&calibrationEnd, "calibration-end", "", "last day of the calibration period, YYYY-MM-DD (UTC), inclusive (required)")
	cmd.Flags().StringVar(&holdoutEnd, "holdout-end", "", "last day of the holdout period, YYYY-MM-DD, inclusive (default: the latest purchase)")
	cmd.Flags().StringVar(&plotFile, "plot", "", "also draw the comparison to this file: .svg or .png")
	return cmd
}

// validationViewOf is segmentation's answer as boomctl shows a holdout
// validation.
func validationViewOf(r *segmentationv1.ValidateModelResponse) validationView {
	m := r.GetModel()
	bg, gg, tr := m.GetBgNbd(), m.GetGammaGamma(), r.GetTracking()
	v := validationView{
		CalibrationEnd: r.GetCalibrationEnd(),
		HoldoutEnd:     r.GetHoldoutEnd(),
		Unit:           "day",
		HoldoutLength:  float64(r.GetHoldoutDays()),
		Customers:      r.GetCustomers(),
		BGNBD:          clv.BGNBD{R: bg.GetR(), Alpha: bg.GetAlpha(), A: bg.GetA(), B: bg.GetB()},
		GammaGamma:     clv.GammaGamma{P: gg.GetP(), Q: gg.GetQ(), Gamma: gg.GetGamma()},
		Actual:         r.GetActual(),
		Predicted:      r.GetPredicted(),
		AggregateError: r.GetAggregateError(),
		MAE:            r.GetMae(),
		RMSE:           r.GetRmse(),
		Correlation:    r.GetCorrelation(),
		Tracking: clv.Tracking{
			CalibrationActual: tr.GetCalibrationActual(), CalibrationExpected: tr.GetCalibrationExpected(),
			HoldoutActual: tr.GetHoldoutActual(), HoldoutExpected: tr.GetHoldoutExpected(), CumulativeError: tr.GetCumulativeError(),
		},
	}
	for _, b := range r.GetByFrequency() {
		fb := clv.FrequencyBin{Frequency: int(b.GetFrequency()), Open: b.GetOpen()}
		v.Bins = append(v.Bins, validationBin{Label: fb.Label(), Frequency: fb.Frequency, Customers: b.GetCustomers(), Actual: b.GetActual(), Predicted: b.GetPredicted()})
	}
	if s := r.GetSpend(); s != nil {
		v.Spend = &validationSpend{
			Customers: s.GetCustomers(), ActualOrderValue: formatMoney(s.GetActualOrderValue()), PredictedOrderValue: formatMoney(s.GetPredictedOrderValue()),
			ActualRevenue: formatMoney(s.GetActualRevenue()), PredictedRevenue: formatMoney(s.GetPredictedRevenue()),
		}
		if actual := s.GetActualRevenue().GetMinorUnits(); actual > 0 {
			v.Spend.revenueError = float64(s.GetPredictedRevenue().GetMinorUnits())/float64(actual) - 1
		}
	}
	return v
}
