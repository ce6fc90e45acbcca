package hot

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/boomerang-loyalty/boomerang/services/segmentation/internal/segment"
)

// Redis keeps profiles in a compact binary form rather than JSON: a batch
// reads back every profile it replaces to move the customer between
// counters, and GetProfile decodes one per call, and JSON's reflection
// took about 6 µs a profile each way. The form is a version byte, then
// the fields in the order of segment.Profile: strings as a length and
// bytes, integers as varints, floats as their 8 IEEE 754 bytes, times as
// Unix seconds and nanoseconds (in UTC), and the prediction behind a
// presence byte. Version 2 adds, after the prediction's fields, the
// interval (a presence byte, then purchases low and high as floats, CLV
// low and high as varints) and, after the prediction, why it is withheld
// (a uvarint). A value that starts with '{' is the JSON earlier versions
// wrote; it and version 1 are still read, and the next write or rebuild
// replaces them.
const (
	profileV1 = 1
	profileV2 = 2
)

var errProfileCorrupt = errors.New("corrupt profile")

// appendProfile appends p's encoding to b.
func appendProfile(b []byte, p *segment.Profile) []byte {
	b = append(b, profileV2)
	b = appendString(b, p.CustomerID)
	b = appendString(b, p.Currency)
	b = binary.AppendVarint(b, p.Orders)
	b = binary.AppendVarint(b, p.TotalValue)
	b = binary.AppendVarint(b, p.AverageOrderValue)
	b = appendTime(b, p.FirstOrderAt)
	b = appendTime(b, p.LastOrderAt)
	b = binary.AppendVarint(b, p.DiscountedOrders)
	b = appendFloat(b, p.DiscountedShare)
	b = binary.AppendVarint(b, p.Refunds)
	b = binary.AppendVarint(b, p.RefundedValue)
	b = binary.AppendUvarint(b, uint64(len(p.Channels)))
	for _, c := range p.Channels {
		b = appendString(b, c)
	}
	b = binary.AppendVarint(b, int64(p.RFM.R))
	b = binary.AppendVarint(b, int64(p.RFM.F))
	b = binary.AppendVarint(b, int64(p.RFM.M))
	b = binary.AppendVarint(b, int64(p.Segment))
	b = binary.AppendUvarint(b, uint64(p.Flags))
	if pr := p.Prediction; pr == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendFloat(b, pr.ExpectedPurchases)
		b = binary.AppendVarint(b, int64(pr.HorizonDays))
		b = appendFloat(b, pr.PAlive)
		b = binary.AppendVarint(b, pr.ExpectedOrderValue)
		b = binary.AppendVarint(b, pr.CLV)
		if !pr.Interval {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = appendFloat(b, pr.PurchasesLow)
			b = appendFloat(b, pr.PurchasesHigh)
			b = binary.AppendVarint(b, pr.CLVLow)
			b = binary.AppendVarint(b, pr.CLVHigh)
		}
	}
	return binary.AppendUvarint(b, uint64(p.Withheld))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// decodeProfile decodes a profile written by appendProfile, or the JSON of
// earlier versions.
func decodeProfile(b []byte, p *segment.Profile) error {
	*p = segment.Profile{}
	if len(b) > 0 && b[0] == '{' {
		return json.Unmarshal(b, p)
	}
	if len(b) == 0 || (b[0] != profileV1 && b[0] != profileV2) {
		return errProfileCorrupt
	}
	v2 := b[0] == profileV2
	d := decoder{b: b[1:]}
	p.CustomerID = d.string()
	p.Currency = d.string()
	p.Orders = d.varint()
	p.TotalValue = d.varint()
	p.AverageOrderValue = d.varint()
	p.FirstOrderAt = d.time()
	p.LastOrderAt = d.time()
	p.DiscountedOrders = d.varint()
	p.DiscountedShare = d.float()
	p.Refunds = d.varint()
	p.RefundedValue = d.varint()
	if n := d.uvarint(); n > 0 && n <= uint64(len(d.b)) {
		p.Channels = make([]string, n)
		for i := range p.Channels {
			p.Channels[i] = d.string()
		}
	} else if n > 0 {
		d.err = true
	}
	p.RFM.R, p.RFM.F, p.RFM.M = int(d.varint()), int(d.varint()), int(d.varint())
	p.Segment = segment.Segment(d.varint())
	p.Flags = segment.Flags(d.uvarint())
	if d.byte() == 1 {
		p.Prediction = &segment.Prediction{
			ExpectedPurchases: d.float(), HorizonDays: int(d.varint()), PAlive: d.float(),
			ExpectedOrderValue: d.varint(), CLV: d.varint(),
		}
		if v2 && d.byte() == 1 {
			pr := p.Prediction
			pr.Interval = true
			pr.PurchasesLow, pr.PurchasesHigh = d.float(), d.float()
			pr.CLVLow, pr.CLVHigh = d.varint(), d.varint()
		}
	}
	if v2 {
		if w := d.uvarint(); w <= 255 {
			p.Withheld = segment.Withheld(w)
		} else {
			d.err = true
		}
	}
	if d.err || len(d.b) != 0 {
		return errProfileCorrupt
	}
	return nil
}

// decoder reads fields off b; a read past the end sets err and yields
// zero values.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) float() float64 {
	if len(d.b) < 8 {
		d.err, d.b = true, nil
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.err = true
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// profileError names the customer whose stored profile could not be read.
func profileError(id string, err error) error {
	return fmt.Errorf("hot: profile %s: %w", id, err)
}
