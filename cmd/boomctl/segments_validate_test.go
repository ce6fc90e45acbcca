package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	segmentationv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/segmentation/v1"
)

// TestPrintValidationFromService renders segmentation's ValidateModel
// answer as the table and the chart.
func TestPrintValidationFromService(t *testing.T) {
	resp := &segmentationv1.ValidateModelResponse{
		CalibrationEnd: "2026-03-31", HoldoutEnd: "2026-06-30", HoldoutDays: 91, Customers: 1200,
		Model: &segmentationv1.GetModelResponse{
			BgNbd:      &segmentationv1.BgNbdParameters{R: 0.8, Alpha: 60, A: 0.5, B: 3},
			GammaGamma: &segmentationv1.GammaGammaParameters{P: 6, Q: 4, Gamma: 1500},
		},
		ByFrequency: []*segmentationv1.HoldoutBin{
			{Frequency: 0, Customers: 700, Actual: 0.2, Predicted: 0.25},
			{Frequency: 1, Customers: 300, Actual: 0.9, Predicted: 0.8},
			{Frequency: 2, Open: true, Customers: 200, Actual: 2.5, Predicted: 2.4},
		},
		Actual: 910, Predicted: 895, AggregateError: -15.0 / 910, Mae: 0.61, Rmse: 1.02, Correlation: 0.58,
		Tracking: &segmentationv1.HoldoutTracking{CalibrationActual: 1500, CalibrationExpected: 1480, HoldoutActual: 910, HoldoutExpected: 880, CumulativeError: -0.0207},
		Spend: &segmentationv1.HoldoutSpend{Customers: 400, ActualOrderValue: eur(4210), PredictedOrderValue: eur(4050),
			ActualRevenue: eur(3831100), PredictedRevenue: eur(3624750)},
	}
	var b bytes.Buffer
	if err := printValidation(&b, validationViewOf(resp)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"to 2026-06-30 (91 days)", "2+        200", "actual 910, predicted 895.0 (-1.6%)", "MAE 0.610, RMSE 1.020, correlation 0.580",
		"cumulative -2.1%", "actual 42.10 EUR, predicted 40.50 EUR (mean over the 400 customers", "actual 38311.00 EUR, predicted 36247.50 EUR (-5.4%)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	svg := filepath.Join(t.TempDir(), "v.svg")
	if err := writeValidationPlot(svg, validationViewOf(resp)); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(svg); err != nil || !bytes.Contains(got, []byte(">2+<")) {
		t.Errorf("chart: %v, no 2+ bin", err)
	}
}

// TestPrintModelAndProfileUncertainty shows standard errors and intervals
// when segmentation sends them, and why a prediction is missing when not.
func TestPrintModelAndProfileUncertainty(t *testing.T) {
	var b bytes.Buffer
	err := printModel(&b, &segmentationv1.GetModelResponse{
		Customers: 2357, RepeatCustomers: 946, Unit: "day",
		BgNbd: &segmentationv1.BgNbdParameters{R: 0.2426, Alpha: 30.9, A: 0.7929, B: 2.426, LogLikelihood: -9582.4,
			StandardErrors: &segmentationv1.BgNbdStandardErrors{R: 0.01256, Alpha: 2.65, A: 0.1857, B: 0.7054}},
		GammaGamma: &segmentationv1.GammaGammaParameters{P: 6.25, Q: 3.74, Gamma: 15.44},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2357 (946 with repeat purchases)", "r=0.2426 ± 0.013", "b=2.426 ± 0.71", "p=6.25 q=3.74 gamma=15.44 (", "± one standard error"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("model lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	err = printProfile(&b, &segmentationv1.GetProfileResponse{CustomerId: "cus_1", Prediction: &segmentationv1.Prediction{
		ExpectedPurchases: 1.5, HorizonDays: 365, PAlive: 0.8, ExpectedOrderValue: eur(4000), Clv: eur(12000),
		ExpectedPurchasesInterval: &segmentationv1.Interval{Low: 1.1, High: 2},
		ClvInterval:               &segmentationv1.MoneyInterval{Low: eur(8000), High: eur(17000)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1.50 (1.10–2.00) in 365 days", "120.00 EUR (80.00 EUR–170.00 EUR) over 365 days", "10th to 90th percentile"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("profile lacks %q:\n%s", want, b.String())
		}
	}
	for w, want := range map[segmentationv1.PredictionWithheld]string{
		segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_UNSPECIFIED:        "none yet: no model",
		segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_NO_MODEL:           "none yet: no model",
		segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_NOT_ENOUGH_HISTORY: "too little history",
		segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_UNVALUED:           "cannot value this customer",
		segmentationv1.PredictionWithheld_PREDICTION_WITHHELD_NO_ORDERS:          "no paid order",
	} {
		b.Reset()
		if err := printProfile(&b, &segmentationv1.GetProfileResponse{CustomerId: "cus_2", PredictionWithheld: w}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("%v: profile lacks %q:\n%s", w, want, b.String())
		}
	}
}
