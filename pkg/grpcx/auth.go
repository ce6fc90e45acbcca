package grpcx

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Scopes name what a token may do. A method requires one scope; the admin
// scope allows everything.
const ScopeAdmin = "admin"

// Tokens maps bearer tokens (kept only as SHA-256 digests) to their scopes.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	digest [32]byte
	scopes map[string]bool
}

// ParseTokens reads "token:scope1,scope2;token2:admin". Tokens must be at
// least 16 characters long.
func ParseTokens(spec string) (*Tokens, error) {
	t := &Tokens{}
	for _, part := range strings.Split(spec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		tok, scopes, ok := strings.Cut(part, ":")
		if !ok || strings.TrimSpace(scopes) == "" {
			return nil, errors.New("token entry without scopes: want token:scope[,scope]")
		}
		if len(tok) < 16 {
			return nil, fmt.Errorf("token entry %d: token shorter than 16 characters", len(t.entries)+1)
		}
		e := tokenEntry{digest: sha256.Sum256([]byte(tok)), scopes: map[string]bool{}}
		for _, s := range strings.Split(scopes, ",") {
			if s = strings.TrimSpace(s); s != "" {
				e.scopes[s] = true
			}
		}
		t.entries = append(t.entries, e)
	}
	return t, nil
}

// Add registers a token with scopes.
func (t *Tokens) Add(token string, scopes ...string) {
	e := tokenEntry{digest: sha256.Sum256([]byte(token)), scopes: map[string]bool{}}
	for _, s := range scopes {
		e.scopes[s] = true
	}
	t.entries = append(t.entries, e)
}

// Len returns the number of tokens.
func (t *Tokens) Len() int { return len(t.entries) }

func (t *Tokens) scopes(token string) map[string]bool {
	d := sha256.Sum256([]byte(token))
	var found map[string]bool
	for _, e := range t.entries {
		// Compare with every entry in constant time so timing tells nothing.
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			found = e.scopes
		}
	}
	return found
}

// Allows reports whether token is known and holds scope (or admin), for
// endpoints outside gRPC that take the same bearer tokens.
func (t *Tokens) Allows(token, scope string) bool {
	granted := t.scopes(token)
	return granted[scope] || granted[ScopeAdmin]
}

// MethodScopes maps full method names ("/pkg.Service/Method") to the scope
// they require. Methods not listed need the admin scope.
type MethodScopes map[string]string

// publicMethods need no token: health checks and reflection.
func public(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

func (t *Tokens) authorize(ctx context.Context, method string, scopes MethodScopes) error {
	if public(method) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return status.Error(codes.Unauthenticated, "missing bearer token: send the metadata \"authorization: Bearer <token>\"")
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(vals[0], "bearer ")
	}
	if !ok {
		return status.Error(codes.Unauthenticated, "authorization metadata must be \"Bearer <token>\"")
	}
	granted := t.scopes(strings.TrimSpace(tok))
	if granted == nil {
		return status.Error(codes.Unauthenticated, "unknown bearer token")
	}
	need, listed := scopes[method]
	if !listed {
		need = ScopeAdmin
	}
	if granted[need] || granted[ScopeAdmin] {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "token lacks scope %q for %s", need, method)
}

func (t *Tokens) unary(scopes MethodScopes) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := t.authorize(ctx, info.FullMethod, scopes); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func (t *Tokens) stream(scopes MethodScopes) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := t.authorize(ss.Context(), info.FullMethod, scopes); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// BearerToken is per-RPC credentials sending a bearer token.
type BearerToken struct {
	Token string
	// AllowInsecure sends the token over a connection without TLS (local
	// and in-cluster use).
	AllowInsecure bool
}

func (b BearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.Token}, nil
}

func (b BearerToken) RequireTransportSecurity() bool { return !b.AllowInsecure }
