//go:build faults

package faults

import (
	"path/filepath"
	"testing"

	"github.com/boomerang-loyalty/boomerang/pkg/testkit"
)

// TestDistributed runs each service as its own process on an external
// nats-server (the deployment's own configuration, users and permissions),
// PostgreSQL and Redis, which stay up while the services are killed one at
// a time; halfway through, nats-server is killed and restarted on its
// store, and Redis is killed and started again empty.
func TestDistributed(t *testing.T) {
	dir := workDir(t)
	env := baseEnv(t, dir)
	natsEnv := append([]string(nil), env...)
	ns, natsURL := natsServer(t, dir, filepath.Join(moduleRoot(), "deploy", "nats", "nats.conf"))
	ns.env = append(ns.env, natsEnv...)
	ns.start()
	rd := redisServer(t, dir)
	rd.start()

	grpcAddr := map[string]string{}
	var services []*proc
	for _, s := range []struct{ name, dbVar string }{
		{"ingest", "INGEST_DATABASE_URL"},
		{"ledger", "LEDGER_DATABASE_URL"},
		{"segmentation", "SEGMENTATION_DATABASE_URL"},
		{"feedback", "FEEDBACK_DATABASE_URL"},
	} {
		g, h := freeAddr(t), freeAddr(t)
		grpcAddr[s.name] = g
		senv := append(append([]string(nil), env...),
			"NATS_URL="+natsURL, "NATS_USER="+s.name, "NATS_PASSWORD="+passwords[s.name],
			s.dbVar+"="+testkit.Postgres(t),
			"BOOMERANG_GRPC_ADDR="+g, "BOOMERANG_HTTP_ADDR="+h,
		)
		switch s.name {
		case "segmentation":
			senv = append(senv, "SEGMENTATION_REDIS_URL=redis://"+rd.tcp+"/0")
		case "feedback":
			senv = append(senv, "FEEDBACK_SEGMENTATION_ADDR="+grpcAddr["segmentation"], "FEEDBACK_SEGMENTATION_TOKEN="+adminToken)
		}
		p := newProc(t, dir, s.name, binary(t, s.name), senv)
		p.healthz = "http://" + h + "/healthz"
		p.start()
		services = append(services, p)
	}
	run(t, target{
		natsURL: natsURL,
		grpc:    grpcAddr,
		victims: services,
		during: func(t *testing.T) {
			t.Log("killing nats-server and restarting it on its store; killing Redis and starting it empty")
			ns.kill()
			rd.kill()
			ns.start()
			rd.start()
		},
	})
}
