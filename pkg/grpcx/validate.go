package grpcx

import (
	"errors"
	"fmt"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Validator checks messages against the rules declared in their .proto
// files (protovalidate), so the rules live in one place for every transport.
type Validator struct {
	v protovalidate.Validator
}

// NewValidator compiles rules lazily, per message type, on first use.
func NewValidator() (*Validator, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("protovalidate: %w", err)
	}
	return &Validator{v: v}, nil
}

// FieldViolation is one broken rule: the field path (e.g.
// "orders[2].total.currency") and what is wrong with it.
type FieldViolation struct {
	Field       string
	Description string
}

// Check validates m and returns its violations; a non-nil error means the
// rules themselves could not be evaluated.
func (v *Validator) Check(m proto.Message) ([]FieldViolation, error) {
	err := v.v.Validate(m)
	if err == nil {
		return nil, nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return nil, err
	}
	out := make([]FieldViolation, 0, len(verr.Violations))
	for _, viol := range verr.Violations {
		field := protovalidate.FieldPathString(viol.Proto.GetField())
		if field == "" {
			field = "(message)"
		}
		out = append(out, FieldViolation{Field: field, Description: viol.Proto.GetMessage()})
	}
	return out, nil
}

// InvalidArgument builds the gRPC status for violations, with a BadRequest
// detail listing each field.
func InvalidArgument(msg string, violations []FieldViolation) error {
	st := status.New(codes.InvalidArgument, msg)
	br := &errdetails.BadRequest{}
	for _, fv := range violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: fv.Field, Description: fv.Description})
	}
	if d, err := st.WithDetails(br); err == nil {
		return d.Err()
	}
	return st.Err()
}

// Summary renders violations as one line for a status message or a
// dead-letter reason.
func Summary(violations []FieldViolation) string {
	s := ""
	for i, fv := range violations {
		if i > 0 {
			s += "; "
		}
		s += fv.Field + ": " + fv.Description
	}
	return s
}

func (v *Validator) validateRequest(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	violations, err := v.Check(m)
	if err != nil {
		return status.Errorf(codes.Internal, "validating request: %v", err)
	}
	if len(violations) > 0 {
		return InvalidArgument("invalid request: "+Summary(violations), violations)
	}
	return nil
}
