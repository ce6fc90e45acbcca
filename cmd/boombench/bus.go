package main

import (
	"maps"
	"strings"

	"github.com/boomerang-loyalty/boomerang/pkg/natsx"
)

// withBusUser is env with the variables that give service, run by a
// second platform on the first one's NATS, the credentials of its user.
func withBusUser(env map[string]string, service string, c natsx.Credentials) map[string]string {
	env = maps.Clone(env)
	prefix := "NATS_" + strings.ToUpper(service) + "_"
	env[prefix+"USER"], env[prefix+"PASSWORD"] = c.User, c.Password
	return env
}
