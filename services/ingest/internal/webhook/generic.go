package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Generic is the canonical order JSON over HTTP, for any other platform
// or an in-house shop: see the HTTP intake section of
// services/ingest/README.md.
var Generic = Platform{Name: "generic", Verify: verifyGeneric}

// Generic's headers.
const (
	HeaderDeliveryID = "Boomerang-Delivery-Id"
	HeaderSignature  = "Boomerang-Signature"
)

// maxDeliveryID bounds a delivery id, which becomes part of a Nats-Msg-Id.
const maxDeliveryID = 128

// verifyGeneric checks Boomerang-Signature: t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>">, with any number of v1 so that a sender
// rotating its secret may sign with both.
func verifyGeneric(h http.Header, body, secret []byte, now time.Time, tolerance time.Duration) (string, error) {
	t, sigs, err := parseSignature(h.Get(HeaderSignature))
	if err != nil {
		return "", err
	}
	ts, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: timestamp %q", ErrSignature, t)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return "", fmt.Errorf("%w: timestamp outside %s of now", ErrSignature, tolerance)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(t))
	mac.Write([]byte{'.'})
	mac.Write(body)
	want := mac.Sum(nil)
	ok := false
	for _, s := range sigs {
		ok = hmac.Equal(s, want) || ok
	}
	if !ok {
		return "", fmt.Errorf("%w: no v1 matches", ErrSignature)
	}
	id := h.Get(HeaderDeliveryID)
	if !ValidDeliveryID(id) {
		return "", fmt.Errorf("%w: %s", ErrDeliveryID, HeaderDeliveryID)
	}
	return id, nil
}

// parseSignature splits t=…,v1=…[,v1=…]; other schemes are ignored, as a
// later version may add them beside v1.
func parseSignature(header string) (t string, sigs [][]byte, err error) {
	if header == "" {
		return "", nil, fmt.Errorf("%w: no %s", ErrSignature, HeaderSignature)
	}
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			if t != "" {
				return "", nil, fmt.Errorf("%w: two timestamps", ErrSignature)
			}
			t = v
		case "v1":
			if s, err := hex.DecodeString(v); err == nil && len(s) == sha256.Size {
				sigs = append(sigs, s)
			}
		}
	}
	if t == "" || len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: want t= and v1=", ErrSignature)
	}
	return t, sigs, nil
}

// ValidDeliveryID reports whether id may identify a delivery: 1 to 128
// printable ASCII characters, no space.
func ValidDeliveryID(id string) bool {
	if id == "" || len(id) > maxDeliveryID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}
