package natsx

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// User is a user of the embedded server: its password and the subjects it
// may publish and subscribe to. The lists allow; everything else is
// denied. ">" allows everything.
type User struct {
	Name      string
	Password  string
	Publish   []string
	Subscribe []string
}

// InboxPrefix is the prefix of a user's reply subjects, "_INBOX.<user>".
// Replies carry JetStream's answers (publish acknowledgements, pulled
// messages), so each user may subscribe to its own inbox only: with the
// shared "_INBOX.>" any user could read what is pulled for another.
func InboxPrefix(user string) string { return "_INBOX." + user }

// ValidUserName reports whether name can be a user's name: one subject
// token (letters, digits, '-', '_'), since it becomes the token of the
// user's inbox prefix.
func ValidUserName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Credentials are what a client presents to NATS: a user and password, or
// a credentials file (JWT and nkey seed) for a server in operator mode.
type Credentials struct {
	User     string
	Password string
	// CredsFile is a .creds file (NATS_CREDS).
	CredsFile string
	// InboxPrefix overrides the prefix of the connection's reply subjects
	// (default InboxPrefix(User) when User is set, "_INBOX" otherwise).
	InboxPrefix string
}

// IsZero reports whether no credentials are set.
func (c Credentials) IsZero() bool { return c.User == "" && c.Password == "" && c.CredsFile == "" }

// Options are the connection options that present the credentials and
// use the user's own inbox.
func (c Credentials) Options() []nats.Option {
	var opts []nats.Option
	if c.User != "" || c.Password != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	prefix := c.InboxPrefix
	if prefix == "" && c.User != "" {
		prefix = InboxPrefix(c.User)
	}
	if prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	return opts
}

// ErrNoCredentials is returned when a NATS server reachable from other
// machines would be used, or served, without credentials.
var ErrNoCredentials = errors.New("NATS on a non-loopback address needs credentials")

// IsLoopback reports whether host can only be reached from this machine:
// "localhost" or a loopback IP address. "", "0.0.0.0" and "::" listen on
// every interface and are not.
func IsLoopback(host string) bool {
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URLsAreLoopback reports whether every server of a NATS URL list
// ("nats://a:4222,nats://b:4222") is on this machine.
func URLsAreLoopback(urls string) bool {
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil || !IsLoopback(p.Hostname()) {
			return false
		}
	}
	return true
}

// serverUsers turns users into the server's, each with its permissions.
func serverUsers(users []User) ([]*server.User, error) {
	out := make([]*server.User, 0, len(users))
	seen := map[string]bool{}
	for _, u := range users {
		switch {
		case !ValidUserName(u.Name):
			return nil, fmt.Errorf("user %q: want letters, digits, '-' or '_'", u.Name)
		case seen[u.Name]:
			return nil, fmt.Errorf("user %q: named twice", u.Name)
		case len(u.Password) < 16:
			return nil, fmt.Errorf("user %q: password shorter than 16 characters", u.Name)
		}
		seen[u.Name] = true
		out = append(out, &server.User{
			Username: u.Name,
			Password: u.Password,
			Permissions: &server.Permissions{
				// An empty allow list would allow everything: deny it all
				// instead.
				Publish:   allowOnly(u.Publish),
				Subscribe: allowOnly(u.Subscribe),
			},
		})
	}
	return out, nil
}

func allowOnly(subjects []string) *server.SubjectPermission {
	if len(subjects) == 0 {
		return &server.SubjectPermission{Deny: []string{">"}}
	}
	return &server.SubjectPermission{Allow: append([]string(nil), subjects...)}
}
