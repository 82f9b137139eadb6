package all_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/config"
	_ "github.com/drkit/drkit/internal/engine/postgres" // registers the engine Check dispatches to
	"github.com/drkit/drkit/internal/testenv"
	replall "github.com/drkit/drkit/replication/all"
)

func pgExec(t *testing.T, dsn string, qs ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range qs {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestCheckCoversEveryPostgresDatabase: a standby holds every database of
// its primary, so a check compares them all, not only the DSN's; templates
// and the heartbeat table are left out.
func TestCheckCoversEveryPostgresDatabase(t *testing.T) {
	pg := testenv.StartPostgres(t)
	sb := pg.StartStandby(t)
	pgExec(t, pg.DSN("postgres"),
		"CREATE TABLE items (id int PRIMARY KEY, v text)",
		"INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 1000) g",
		"CREATE TABLE drkit_heartbeat (cluster text PRIMARY KEY, beat_us bigint NOT NULL)",
		"INSERT INTO drkit_heartbeat VALUES ('orders', 1)",
		"CREATE DATABASE appdb")
	pgExec(t, pg.DSN("appdb"),
		"CREATE SCHEMA billing",
		"CREATE TABLE billing.invoices (id int PRIMARY KEY, total numeric)",
		"INSERT INTO billing.invoices SELECT g, g * 1.5 FROM generate_series(1, 500) g")
	cl := config.Cluster{Name: "orders", Engine: "postgres", DSN: pg.DSN("postgres")}
	cl.Monitor.Heartbeat.Table = "drkit_heartbeat"
	rep, err := replall.Check(context.Background(), cl, cl.DSN, config.Replica{Name: "standby", DSN: sb.DSN("postgres")}, 300, 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.InSync() || rep.Replica != "standby" || rep.Tables != 2 || rep.Rows != 1500 || rep.Chunks != 4+2 {
		t.Fatalf("want 2 tables in 2 databases, 1500 rows in 6 chunks, in sync: %+v", rep)
	}
}
