package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
)

// verifyBodyHMAC checks the header named, which must hold the base64
// HMAC-SHA256 of the raw body with secret (Shopify's and WooCommerce's
// scheme), comparing in constant time.
func verifyBodyHMAC(h http.Header, header string, body, secret []byte) error {
	sig := strings.TrimSpace(h.Get(header))
	if sig == "" {
		return fmt.Errorf("%w: no %s", ErrSignature, header)
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s is not a base64 HMAC-SHA256", ErrSignature, header)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: %s does not match", ErrSignature, header)
	}
	return nil
}

// decodeJSON reads a platform's body into v; every failure is an
// *orderjson.Error wrapping orderjson.ErrSyntax, naming the field when
// the JSON has the wrong type there.
func decodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &orderjson.Error{Field: te.Field, Err: fmt.Errorf("%w: want %s, got %s", orderjson.ErrSyntax, te.Type, te.Value)}
		}
		return &orderjson.Error{Err: fmt.Errorf("%w: %v", orderjson.ErrSyntax, err)}
	}
	return nil
}
