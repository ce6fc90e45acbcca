package clv

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTransactions(t *testing.T) {
	d := func(s string) time.Time { return day(s) }
	tests := []struct {
		name  string
		input string
		opts  ParseOptions
		want  []Transaction
	}{
		{name: "empty", input: "", want: nil},
		{name: "blank lines only", input: "\n  \n", want: nil},
		{
			name:  "csv with header, columns found by name in any order",
			input: "Amount,Order Date,customer_id\n12.5,2026-01-02,c1\n3,2026-01-05,c2\n",
			want:  []Transaction{{"c1", d("2026-01-02"), 12.5}, {"c2", d("2026-01-05"), 3}},
		},
		{
			name:  "csv without header, positional, CRLF and blank line",
			input: "c1,20260102,1.25\r\n\r\nc1,2026/01/03,2\r\n",
			want:  []Transaction{{"c1", d("2026-01-02"), 1.25}, {"c1", d("2026-01-03"), 2}},
		},
		{
			name:  "csv quoted id with comma",
			input: "customer,date,value\n\"Doe, Jane\",2026-01-02,5\n",
			want:  []Transaction{{"Doe, Jane", d("2026-01-02"), 5}},
		},
		{
			name:  "whitespace CDNOW layout detected: customer 1, date 3, amount 5",
			input: " 00004 0001 19970101  2   29.33\r\n 00004 0001 19970118  2   29.73\r\n",
			want:  []Transaction{{"00004", d("1997-01-01"), 29.33}, {"00004", d("1997-01-18"), 29.73}},
		},
		{
			name:  "whitespace with explicit customer column",
			input: " 00004 0001 19970101  2   29.33\n",
			opts:  ParseOptions{CustomerColumn: 2},
			want:  []Transaction{{"0001", d("1997-01-01"), 29.33}},
		},
		{
			name:  "whitespace with a header and tabs",
			input: "user\tday\tspend\nu1\t2026-03-01\t7\n",
			want:  []Transaction{{"u1", d("2026-03-01"), 7}},
		},
		{
			name:  "explicit format and columns, RFC 3339 keeps its own date",
			input: "x;1,2026-01-01T23:30:00-05:00,9,ignored\n",
			opts:  ParseOptions{Format: FormatCSV, CustomerColumn: 1, DateColumn: 2, AmountColumn: 3},
			want:  []Transaction{{"x;1", time.Date(2026, 1, 1, 23, 30, 0, 0, time.FixedZone("", -5*3600)), 9}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTransactions(strings.NewReader(tt.input), tt.opts)
			if err != nil {
				t.Fatalf("ParseTransactions: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d transactions %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.CustomerID != w.CustomerID || !g.Date.Equal(w.Date) || g.Amount != w.Amount {
					t.Errorf("transaction %d: got %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestParseTransactionsErrors(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		opts     ParseOptions
		wantLine int
		wantText string
	}{
		{name: "bad date", input: "cust,date,amount\na,2026-01-01,1\nb,2026-13-01,2\n", wantLine: 3, wantText: "column 2: date"},
		{name: "bad amount", input: "a 20260101 1\nb 20260102 x1\n", wantLine: 2, wantText: `amount "x1" is not a number`},
		{name: "negative amount", input: "a,2026-01-01,-3\n", wantLine: 1, wantText: "negative"},
		{name: "NaN amount", input: "a,2026-01-01,NaN\n", wantLine: 1, wantText: "not finite"},
		{name: "short row", input: "a 20260101 1\n\nb 20260102\n", wantLine: 3, wantText: "2 columns, want at least 3"},
		{name: "unknown header", input: "who,when,howmuch\na,2026-01-01,1\n", wantLine: 1, wantText: "no customer column"},
		{name: "no date column", input: "a,b,1\n", opts: ParseOptions{CustomerColumn: 1, AmountColumn: 3}, wantLine: 1, wantText: "no date column"},
		{name: "same column twice", input: "a,2026-01-01,1\n", opts: ParseOptions{AmountColumn: 2}, wantLine: 1, wantText: "three different columns"},
		{name: "bad csv quoting", input: "a,2026-01-01,1\n\"b,2026-01-02,2\n", wantLine: 2, wantText: "bad row"},
		{name: "empty customer", input: "customer,date,amount\n  ,2026-01-01,1\n", wantLine: 2, wantText: "empty customer id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTransactions(strings.NewReader(tt.input), tt.opts)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got error %v, want a *ParseError", err)
			}
			if !errors.Is(err, ErrBadRow) {
				t.Errorf("got %v, want it to wrap ErrBadRow", err)
			}
			if pe.Line != tt.wantLine || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("got line %d %q, want line %d containing %q", pe.Line, err, tt.wantLine, tt.wantText)
			}
		})
	}
	if _, err := ParseTransactions(strings.NewReader("a,2026-01-01,1"), ParseOptions{DateColumn: -1}); err == nil {
		t.Errorf("negative column: got no error")
	}
}

// TestParseCDNOW reads the whole CDNOW file with no options: the detected
// columns must give the 2,357 customers and the file's total spend.
func TestParseCDNOW(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "CDNOW_sample.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	txs, err := ParseTransactions(f, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	customers := map[string]bool{}
	var total float64
	for _, tx := range txs {
		customers[tx.CustomerID] = true
		total += tx.Amount
	}
	if len(txs) != 6919 || len(customers) != 2357 || math.Abs(total-244091.94) > 0.005 {
		t.Errorf("got %d transactions, %d customers, total %.2f; want 6919, 2357, 244091.94", len(txs), len(customers), total)
	}
}

func FuzzParseTransactions(f *testing.F) {
	seeds := []string{
		"",
		"customer_id,date,amount\nc1,2026-01-02,12.50\nc1,2026-01-09,3\n",
		"c1,20260102,1.25\r\nc2,2026/01/03,2\r\n",
		" 00004 0001 19970101  2   29.33\n 00004 0001 19970118  2   29.73\n",
		"user\tday\tspend\nu1\t2026-03-01T10:00:00+02:00\t7\n",
		"\"a,b\",2026-01-01,1\n\"unterminated,2026-01-01,1\n",
		"a,2026-01-01,1e308\na,2026-01-02,1e308\n",
		"x,2026-02-30,1\n",
	}
	for _, s := range seeds {
		f.Add(s, 0, 0, 0)
	}
	f.Add(" 00004 0001 19970101  2   29.33\n", 2, 3, 5)
	f.Fuzz(func(t *testing.T, input string, cust, date, amount int) {
		opts := ParseOptions{CustomerColumn: cust % 8, DateColumn: date % 8, AmountColumn: amount % 8}
		txs, err := ParseTransactions(strings.NewReader(input), opts)
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) && pe.Line < 1 {
				t.Fatalf("error with line %d: %v", pe.Line, err)
			}
			return
		}
		for i, tx := range txs {
			if tx.CustomerID == "" || math.IsNaN(tx.Amount) || math.IsInf(tx.Amount, 0) || tx.Amount < 0 {
				t.Fatalf("transaction %d accepted but invalid: %+v", i, tx)
			}
		}
		// Whatever parses must summarise: the parser's guarantees are
		// Summarize's preconditions.
		end, ok := LastDate(txs)
		if !ok {
			return
		}
		cs, err := Summarize(txs, end, Week)
		if err != nil {
			t.Fatalf("Summarize of parsed transactions: %v", err)
		}
		for _, c := range cs {
			if c.X < 0 || c.TX < 0 || c.TX > c.T || math.IsNaN(c.Monetary) {
				t.Fatalf("impossible summary %+v", c)
			}
		}
	})
}
