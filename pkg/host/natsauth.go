package host

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
)

// NATSCredentials reads the credentials a service presents to an external
// NATS server: NATS_<SERVICE>_USER, NATS_<SERVICE>_PASSWORD and
// NATS_<SERVICE>_CREDS (so that one process running several services
// gives each its own user), else NATS_USER, NATS_PASSWORD and NATS_CREDS;
// NATS_INBOX_PREFIX overrides the inbox prefix, "_INBOX.<user>" by default
// (the server lets each user subscribe to its own inbox only). A
// NATS_<SERVICE>_PASSWORD without a user is the password of the user named
// after the service.
func NATSCredentials(env config.Source, service string) natsx.Credentials {
	r := config.NewReader(env)
	// The bus user of "order-ingest" is "ingest", of "points-ledger"
	// "ledger": the last word of the service's name.
	service = service[strings.LastIndex(service, "-")+1:]
	c := natsx.Credentials{
		User:      NATSUserOf.Read(r, service),
		Password:  NATSPasswordOf.Read(r, service),
		CredsFile: NATSCredsOf.Read(r, service),
	}
	if c.User == "" && c.Password != "" {
		// NATS_<SERVICE>_PASSWORD alone is the password of the user named
		// after the service, as in the deployment's nats.conf.
		c.User = service
	}
	if c.IsZero() {
		c = natsx.Credentials{
			User:      NATSUser.Read(r),
			Password:  NATSPassword.Read(r),
			CredsFile: NATSCredsFile.Read(r),
		}
	}
	c.InboxPrefix = NATSInbox.Read(r)
	return c
}

// CheckNATS refuses to use a NATS server on another machine without
// credentials, in the variables or in the URL (nats://user:pass@host):
// such a server either lets anyone on the network mint points, or refuses
// the service anyway.
func CheckNATS(urls string, c natsx.Credentials) error {
	if !c.IsZero() || natsx.URLsAreLoopback(urls) || urlHasUser(urls) {
		return nil
	}
	return fmt.Errorf("%s is not on this machine (%w): set NATS_USER and NATS_PASSWORD, or NATS_CREDS", redact(urls), natsx.ErrNoCredentials)
}

func urlHasUser(urls string) bool {
	for _, u := range strings.Split(urls, ",") {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil && p.User != nil {
			return true
		}
	}
	return false
}

func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil {
			parts[i] = p.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
