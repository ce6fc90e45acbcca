package grpcx

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestParseTokens(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr bool
		want    int
	}{
		{"", false, 0},
		{"writer-0123456789abcdef:ingest:write,ingest:read; admin-0123456789abcdef:admin", false, 2},
		{"short:admin", true, 0},
		{"no-scopes-0123456789abcdef", true, 0},
		{"no-scopes-0123456789abcdef:", true, 0},
	}
	for _, tt := range tests {
		got, err := ParseTokens(tt.spec)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTokens(%q) error = %v, want error %v", tt.spec, err, tt.wantErr)
			continue
		}
		if err == nil && got.Len() != tt.want {
			t.Errorf("ParseTokens(%q) has %d tokens, want %d", tt.spec, got.Len(), tt.want)
		}
	}
}

func TestAuthorize(t *testing.T) {
	tokens, err := ParseTokens("writer-0123456789abcdef:ingest:write;reader-0123456789abcdef:ingest:read;admin-0123456789abcdef:admin")
	if err != nil {
		t.Fatal(err)
	}
	scopes := MethodScopes{"/s.S/Write": "ingest:write", "/s.S/Read": "ingest:read"}
	interceptor := tokens.unary(scopes)
	tests := []struct {
		name   string
		auth   string
		method string
		want   codes.Code
	}{
		{"writer writes", "Bearer writer-0123456789abcdef", "/s.S/Write", codes.OK},
		{"reader cannot write", "Bearer reader-0123456789abcdef", "/s.S/Write", codes.PermissionDenied},
		{"admin does anything", "Bearer admin-0123456789abcdef", "/s.S/Write", codes.OK},
		{"unlisted method needs admin", "Bearer writer-0123456789abcdef", "/s.S/Other", codes.PermissionDenied},
		{"no token", "", "/s.S/Read", codes.Unauthenticated},
		{"unknown token", "Bearer nope-0123456789abcdef", "/s.S/Read", codes.Unauthenticated},
		{"not a bearer", "Basic abc", "/s.S/Read", codes.Unauthenticated},
		{"health is open", "", "/grpc.health.v1.Health/Check", codes.OK},
		{"reflection is open", "", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.auth != "" {
				ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", tt.auth))
			}
			_, err := interceptor(ctx, nil, &grpc.UnaryServerInfo{FullMethod: tt.method}, func(context.Context, any) (any, error) {
				return "ok", nil
			})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code = %v, want %v (%v)", got, tt.want, err)
			}
		})
	}
}
