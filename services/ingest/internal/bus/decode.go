package bus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	ingestv1 "github.com/boomerang-loyalty/boomerang/proto/gen/go/boomerang/ingest/v1"

	"github.com/boomerang-loyalty/boomerang/pkg/grpcx"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/ingest"
	"github.com/boomerang-loyalty/boomerang/services/ingest/internal/orderjson"
)

// ValidSource reports whether s may name a source in an input subject:
// ^[a-z0-9][a-z0-9_-]{0,63}$, checked by hand because every message's
// subject is (the regular expression took 1.4 % of ingest's CPU).
func ValidSource(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// sourceOf returns the source an input subject names.
func sourceOf(subject string) (string, bool) {
	s, ok := strings.CutPrefix(subject, InputPrefix)
	if !ok || !ValidSource(s) {
		return "", false
	}
	return s, true
}

// Check applies every field rule of an order: those declared in
// ingest.proto and the text rules of ingest.CheckText. The gRPC port
// applies the same (the server validates the .proto rules of each
// request, the port the text rules).
func Check(val *grpcx.Validator, o *ingestv1.Order) ([]grpcx.FieldViolation, error) {
	violations, err := val.Check(o)
	if err != nil {
		return nil, err
	}
	for _, v := range ingest.CheckText(o) {
		violations = append(violations, grpcx.FieldViolation{Field: v.Field, Description: v.Description})
	}
	return violations, nil
}

// notUTF8 returns the path of the first string field in the protobuf
// message b (of type md) that is not UTF-8, or "" if it finds none: the
// protobuf runtime does not say which field it refused.
func notUTF8(b []byte, md protoreflect.MessageDescriptor, prefix string) string {
	seen := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		name := prefix + string(fd.Name())
		if fd.IsList() {
			name += "[" + strconv.Itoa(seen[num]) + "]"
			seen[num]++
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				return name
			}
		case protoreflect.MessageKind:
			if p := notUTF8(v, fd.Message(), name+"."); p != "" {
				return p
			}
		}
	}
	return ""
}

// Decode reads an order from a message body: protobuf when the
// Content-Type says so, JSON (plain or CloudEvents) when it says so, and
// otherwise JSON when the body starts with '{' and protobuf when not.
func Decode(h nats.Header, data []byte) (*ingestv1.Order, error) {
	ct := strings.ToLower(h.Get(natsx.HeaderContentType))
	isJSON := strings.Contains(ct, "json")
	if ct == "" {
		trimmed := strings.TrimLeft(string(data[:min(len(data), 64)]), " \t\r\n")
		isJSON = strings.HasPrefix(trimmed, "{")
	} else if !isJSON && !strings.Contains(ct, "protobuf") {
		return nil, fmt.Errorf("%w: unsupported content type %q", orderjson.ErrSyntax, ct)
	}
	if isJSON {
		return orderjson.Decode(data)
	}
	o := &ingestv1.Order{}
	if err := proto.Unmarshal(data, o); err != nil {
		// The protobuf runtime refuses a string field that is not UTF-8
		// and names the problem only in its text: that is a broken text
		// rule (invalid), as it is in JSON, not an undecodable message.
		if strings.Contains(err.Error(), "invalid UTF-8") {
			if field := notUTF8(data, o.ProtoReflect().Descriptor(), ""); field != "" {
				return nil, &orderjson.Error{Field: field, Err: errors.New("must be valid UTF-8")}
			}
			return nil, &orderjson.Error{Err: fmt.Errorf("a string field is not valid UTF-8: %v", err)}
		}
		return nil, fmt.Errorf("%w: protobuf: %v", orderjson.ErrSyntax, err)
	}
	return o, nil
}
