package platform

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/boomerang-loyalty/boomerang/pkg/busauth"
	"github.com/boomerang-loyalty/boomerang/pkg/config"
	"github.com/boomerang-loyalty/boomerang/pkg/host"
	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
)

// busCredentials finds the credentials of every user of the bus.
//
// Embedded server: the users of busauth, each with the password in
// NATS_<USER>_PASSWORD or, when it is unset, one generated once and kept
// in the data directory (nats-<user>.password, mode 0600), like the admin
// token. A server reachable from other machines gets no generated shop
// password: going public is deliberate, with a password the operator
// chose and handed to the shops.
//
// External server (NATS_URL): each service run here presents its own
// credentials (host.NATSCredentials: NATS_<SERVICE>_USER and _PASSWORD,
// else NATS_USER and NATS_PASSWORD); a server on another machine is not
// used without them.
func (m *Main) busCredentials(env config.Source, embeddedHost string) ([]natsx.User, error) {
	m.natsCreds = map[string]natsx.Credentials{}
	m.natsFiles = map[string]string{}
	if m.Config.NATSURL != "" {
		for _, svc := range AllServices {
			if !m.Config.Services[svc] {
				continue
			}
			c := host.NATSCredentials(env, svc)
			if err := host.CheckNATS(m.Config.NATSURL, c); err != nil {
				return nil, fmt.Errorf("NATS_URL: %s: %w", svc, err)
			}
			m.natsCreds[svc] = c
		}
		return nil, nil
	}
	loopback := natsx.IsLoopback(embeddedHost)
	var users []natsx.User
	for _, name := range busauth.Names() {
		variable := host.NATSPasswordOf.For(name)
		password, ok := env(variable)
		password = strings.TrimSpace(password)
		switch {
		case ok && password != "":
			if len(password) < 16 {
				return nil, fmt.Errorf("%s: at least 16 characters", variable)
			}
		case name == busauth.Shop && !loopback:
			return nil, fmt.Errorf("BOOMERANG_EMBEDDED_NATS_ADDR %s can be reached from other machines: %w: set %s, the password shops publish with (at least 16 characters); it is generated only for a loopback address",
				m.Config.EmbeddedNATS, natsx.ErrNoCredentials, variable)
		default:
			file := filepath.Join(m.Config.DataDir, "nats-"+name+".password")
			var err error
			if password, err = readOrCreate(file); err != nil {
				return nil, fmt.Errorf("nats password of %s: %w", name, err)
			}
			m.natsFiles[name] = file
		}
		u, _ := busauth.User(name, password)
		users = append(users, u)
		m.natsCreds[name] = natsx.Credentials{User: name, Password: password}
	}
	return users, nil
}

// bus connects one service to NATS as its own user, so that what it may
// do there is its own permissions, not the process's.
func (m *Main) bus(natsURL, service string) (jetstream.JetStream, error) {
	nc, js, err := natsx.Connect(natsURL, "boomerang-"+service, m.log, m.natsCreds[service].Options()...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", service, err)
	}
	m.conns = append(m.conns, nc)
	return js, nil
}

// NATSCredentials are the credentials of a user of the platform's NATS:
// with the embedded server, any of busauth's users; with an external
// one, those of a service run here. Tests and tools connect with them.
func (m *Main) NATSCredentials(user string) natsx.Credentials { return m.natsCreds[user] }

// EmbeddedNATS is the embedded server, nil with an external one (tests
// look at its connections).
func (m *Main) EmbeddedNATS() *server.Server { return m.ns }
