// Package clv predicts customer lifetime value from transaction histories
// with the two standard probability models of customer-base analysis:
//
//   - BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy
//     Way") for the number of repeat purchases and the probability that a
//     customer is still active;
//   - Gamma-Gamma (Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary
//     Value") for the value of those purchases.
//
// Both are fitted by maximum likelihood over the whole customer base from a
// per-customer summary (x, t_x, T, monetary value), which Summarize builds
// from transactions and ParseTransactions reads from CSV or
// whitespace-separated files. A Model holds both fits and values each
// customer over a horizon (Model.CLV).
//
// The package is pure computation: it does no I/O beyond the io.Reader it is
// given, so the segmentation service and the boomctl CLI share it.
package clv
