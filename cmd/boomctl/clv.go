package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/clv"
)

func (a *app) clvCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clv",
		Short: "Customer lifetime value models, offline from a transaction file",
	}
	cmd.AddCommand(a.clvFitCommand(), a.clvValidateCommand())
	return cmd
}

type clvFitFlags struct {
	transactions   string
	calibrationEnd string
	unit           string
	format         string
	customerColumn int
	dateColumn     int
	amountColumn   int
}

// clvConvergence is how a fit ended, beside its parameters in the output.
type clvConvergence struct {
	LogLikelihood float64 `json:"log_likelihood"`
	Iterations    int     `json:"iterations"`
	Status        string  `json:"status"`
	GradientNorm  float64 `json:"gradient_norm"`
}

func newCLVConvergence(ll float64, c clv.Convergence) clvConvergence {
	return clvConvergence{LogLikelihood: ll, Iterations: c.Iterations, Status: c.Status, GradientNorm: c.GradientNorm}
}

// clvFitOutput is the JSON `clv fit` prints. The parameters sit at the top
// of each model's object (.bgnbd.r, .gamma_gamma.p) for scripts.
type clvFitOutput struct {
	CalibrationEnd           string   `json:"calibration_end"`
	Unit                     clv.Unit `json:"unit"`
	Transactions             int      `json:"transactions"`
	Customers                int      `json:"customers"`
	RepeatCustomers          int      `json:"repeat_customers"`
	ZeroValueRepeatCustomers int      `json:"zero_value_repeat_customers"`
	BGNBD                    struct {
		clv.BGNBD
		clvConvergence
	} `json:"bgnbd"`
	GammaGamma struct {
		clv.GammaGamma
		clvConvergence
	} `json:"gamma_gamma"`
}

func (a *app) clvFitCommand() *cobra.Command {
	var f clvFitFlags
	cmd := &cobra.Command{
		Use:   "fit",
		Short: "Fit the BG/NBD and Gamma-Gamma models to a transaction file and print their parameters",
		Long: `Fit the BG/NBD purchase model (Fader, Hardie & Lee 2005) and the Gamma-Gamma spend
model (Fader & Hardie 2013) by maximum likelihood to the customers in a transaction
file, and print the parameters, log-likelihoods and customer counts as JSON.
It runs offline: no Boomerang server is involved.

The file has one purchase per row: customer id, date and amount (one currency).
CSV files may have a header naming the columns (customer_id, date, amount and
common variants); whitespace-separated files such as CDNOW_sample.txt need none.
Without a header the customer is column 1, the date the first column holding a
date, the amount the last column; --customer-column, --date-column and
--amount-column (numbered from 1) override any of them.

Purchases on the same day are one purchase; a customer's first purchase is not a
repeat; purchases after --calibration-end are ignored.`,
		Example: `  boomctl clv fit --transactions CDNOW_sample.txt --calibration-end 1997-09-30
  boomctl clv fit --transactions orders.csv --unit day
  export-orders | boomctl clv fit --transactions - --format csv`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			return a.clvFit(cmd, f)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.transactions, "transactions", "", `transaction file ("-" for stdin)`)
	fs.StringVar(&f.calibrationEnd, "calibration-end", "", "last day of the calibration period, YYYY-MM-DD, inclusive (default: the last transaction's date)")
	fs.StringVar(&f.unit, "unit", "week", "time unit of the models: day or week")
	fs.StringVar(&f.format, "format", "auto", "file format: auto, csv or whitespace")
	fs.IntVar(&f.customerColumn, "customer-column", 0, "column of the customer id, from 1 (default: by header name, else 1)")
	fs.IntVar(&f.dateColumn, "date-column", 0, "column of the date, from 1 (default: by header name, else the first column holding a date)")
	fs.IntVar(&f.amountColumn, "amount-column", 0, "column of the amount, from 1 (default: by header name, else the last)")
	return cmd
}

// clvInput is a transaction file read as the flags say.
type clvInput struct {
	txs  []clv.Transaction
	unit clv.Unit
	// end is --calibration-end, or the last transaction's date without it.
	end time.Time
}

// readTransactions checks the flags shared by the clv commands and reads
// the transaction file.
func (a *app) readTransactions(cmd *cobra.Command, f clvFitFlags) (clvInput, error) {
	if f.transactions == "" {
		return clvInput{}, usagef("--transactions is required (a file, or - for stdin)")
	}
	unit, err := clv.ParseUnit(f.unit)
	if err != nil {
		return clvInput{}, usagef("--unit: %v", err)
	}
	format, err := clv.ParseFormat(f.format)
	if err != nil {
		return clvInput{}, usagef("--format: %v", err)
	}
	for name, c := range map[string]int{"--customer-column": f.customerColumn, "--date-column": f.dateColumn, "--amount-column": f.amountColumn} {
		if c < 0 {
			return clvInput{}, usagef("%s: columns are numbered from 1, got %d", name, c)
		}
	}
	var end time.Time
	if f.calibrationEnd != "" {
		if end, err = time.Parse(time.DateOnly, f.calibrationEnd); err != nil {
			return clvInput{}, usagef("--calibration-end: want YYYY-MM-DD: %v", err)
		}
	}

	in, err := openTransactions(cmd, f.transactions)
	if err != nil {
		return clvInput{}, err
	}
	defer in.Close()
	txs, err := clv.ParseTransactions(in, clv.ParseOptions{
		Format:         format,
		CustomerColumn: f.customerColumn,
		DateColumn:     f.dateColumn,
		AmountColumn:   f.amountColumn,
	})
	if err != nil {
		return clvInput{}, fmt.Errorf("--transactions %s: %w", f.transactions, err)
	}
	if f.calibrationEnd == "" {
		var ok bool
		if end, ok = clv.LastDate(txs); !ok {
			return clvInput{}, fmt.Errorf("--transactions %s: no transactions", f.transactions)
		}
	}
	return clvInput{txs: txs, unit: unit, end: end}, nil
}

func (a *app) clvFit(cmd *cobra.Command, f clvFitFlags) error {
	in, err := a.readTransactions(cmd, f)
	if err != nil {
		return err
	}
	txs, unit, end := in.txs, in.unit, in.end
	customers, err := clv.Summarize(txs, end, unit)
	if err != nil {
		return err
	}
	m, err := clv.Fit(cmd.Context(), customers, unit, a.now())
	if err != nil {
		return fmt.Errorf("fit %d customers to %s: %w", len(customers), end.Format(time.DateOnly), err)
	}
	out := clvFitOutput{
		CalibrationEnd:           end.Format(time.DateOnly),
		Unit:                     unit,
		Transactions:             len(txs),
		Customers:                m.Customers,
		RepeatCustomers:          m.RepeatCustomers,
		ZeroValueRepeatCustomers: m.ZeroValueRepeatCustomers,
	}
	out.BGNBD.BGNBD, out.BGNBD.clvConvergence = m.BGNBD, newCLVConvergence(m.BGNBDLogLikelihood, m.BGNBDConvergence)
	out.GammaGamma.GammaGamma, out.GammaGamma.clvConvergence = m.GammaGamma, newCLVConvergence(m.GammaGammaLogLikelihood, m.GammaGammaConvergence)
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the fit: %w", err)
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

func openTransactions(cmd *cobra.Command, name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(cmd.InOrStdin()), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--transactions: %w", err)
	}
	return f, nil
}
