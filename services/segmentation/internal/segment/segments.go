package segment

import (
	"fmt"
	"strings"
)

// Segment is a customer's place on the R×F map.
type Segment int

// The numbering follows boomerang.segmentation.v1.Segment.
const (
	Unscored Segment = iota
	Champions
	Loyal
	PotentialLoyalist
	New
	Promising
	NeedAttention
	AboutToSleep
	AtRisk
	CantLoseThem
	Hibernating
	Lost
)

// Segments lists every segment a scored customer can be in.
var Segments = []Segment{Champions, Loyal, PotentialLoyalist, New, Promising, NeedAttention, AboutToSleep,
	AtRisk, CantLoseThem, Hibernating, Lost}

var segmentNames = map[Segment]string{
	Unscored: "unscored", Champions: "champions", Loyal: "loyal", PotentialLoyalist: "potential_loyalist",
	New: "new", Promising: "promising", NeedAttention: "need_attention", AboutToSleep: "about_to_sleep",
	AtRisk: "at_risk", CantLoseThem: "cant_lose_them", Hibernating: "hibernating", Lost: "lost",
}

// String is the segment's key: lower case, used in Redis keys and the CLI.
func (s Segment) String() string {
	if n, ok := segmentNames[s]; ok {
		return n
	}
	return fmt.Sprintf("segment(%d)", int(s))
}

// ParseSegment reads a segment key as String writes it (dashes allowed).
func ParseSegment(s string) (Segment, error) {
	s = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
	for seg, n := range segmentNames {
		if n == s && seg != Unscored {
			return seg, nil
		}
	}
	return Unscored, fmt.Errorf("unknown segment %q", s)
}

// Rule claims the cells of the R×F grid with recency in [RMin, RMax] and
// frequency in [FMin, FMax] for a segment.
type Rule struct {
	Segment    Segment
	RMin, RMax int
	FMin, FMax int
	// Meaning is what the seller should read into it.
	Meaning string
}

// Map is the one R×F segment map: every cell of the 5×5 grid belongs to
// exactly one rule (TestMapCoversGridOnce proves it). It is the widely used
// RFM map, with its bottom corner (R1 F1: one order, longest ago) kept
// apart as Lost, so that Hibernating and Lost do not overlap; Hibernating
// therefore takes two rules.
//
//	F→    1              2              3              4          5
//	R5    New            Potential L.   Potential L.   Champions  Champions
//	R4    Promising      Potential L.   Potential L.   Loyal      Loyal
//	R3    About to Sleep About to Sleep Need Attention Loyal      Loyal
//	R2    Hibernating    Hibernating    At Risk        At Risk    Can't Lose
//	R1    Lost           Hibernating    At Risk        At Risk    Can't Lose
var Map = []Rule{
	{Champions, 5, 5, 4, 5, "bought recently, buy often: reward them, ask for reviews"},
	{Loyal, 3, 4, 4, 5, "buy often, not the most recently: upsell, loyalty programme"},
	{PotentialLoyalist, 4, 5, 2, 3, "recent, a few orders: offer membership"},
	{New, 5, 5, 1, 1, "first order very recently: onboarding"},
	{Promising, 4, 4, 1, 1, "recent first-time buyers: build the relationship"},
	{NeedAttention, 3, 3, 3, 3, "average recency and frequency: limited-time offers"},
	{AboutToSleep, 3, 3, 1, 2, "below average, fading: reactivate before they go"},
	{AtRisk, 1, 2, 3, 4, "bought often, long ago: win back with personal offers"},
	{CantLoseThem, 1, 2, 5, 5, "the most frequent buyers, gone quiet: win back now"},
	{Hibernating, 2, 2, 1, 2, "few orders, long ago"},
	{Hibernating, 1, 1, 2, 2, "few orders, long ago"},
	{Lost, 1, 1, 1, 1, "one order, longest ago"},
}

// Claims reports whether the rule claims the cell (r, f).
func (rule Rule) Claims(r, f int) bool {
	return r >= rule.RMin && r <= rule.RMax && f >= rule.FMin && f <= rule.FMax
}

// Of is the segment of a customer's R and F scores; Unscored when they
// are not both 1–5.
func Of(s RFM) Segment {
	for _, rule := range Map {
		if rule.Claims(s.R, s.F) {
			return rule.Segment
		}
	}
	return Unscored
}
