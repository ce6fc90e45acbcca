package testkit

import (
	"context"
	"database/sql"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func TestPostgres(t *testing.T) {
	db, err := sql.Open("pgx", Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}

func TestRedis(t *testing.T) {
	opts, err := redis.ParseURL(Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestNATS(t *testing.T) {
	_, url := NATS(t)
	nc, js := JetStream(t, url)
	if !nc.IsConnected() {
		t.Fatal("not connected")
	}
	if _, err := js.AccountInfo(context.Background()); err != nil {
		t.Fatal(err)
	}
}
