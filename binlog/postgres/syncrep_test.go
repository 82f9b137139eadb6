package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
)

// syncStandbys reads drd's sync_state; a role without pg_monitor sees NULL
// there, which must be an error naming the grant, not "drd is not a
// synchronous standby" (that fired SyncServerNotWaiting on a healthy
// cluster whose dsn role lacks pg_monitor).
func TestSyncStandbysNeedsPgMonitor(t *testing.T) {
	pg := &testenv.Postgres{}
	testenv.Start(t, pg)
	stop := startShipper(t, pg, fileTargets(t, "orders", "eu"))
	defer stop()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var drd string
	testenv.WaitFor(t, 30*time.Second, "drd's walsender streams", func() bool {
		var others []string
		drd, others, _, err = syncStandbys(ctx, admin)
		return err == nil && len(others) == 0
	})
	if drd != "async" {
		t.Fatalf("drd's sync_state = %q without synchronous_standby_names, want async", drd)
	}
	testenv.PGExec(t, admin, "CREATE ROLE nomon LOGIN")
	dsn := strings.Replace(pg.DSN("postgres"), "postgres://postgres@", "postgres://nomon@", 1)
	if dsn == pg.DSN("postgres") {
		t.Fatalf("cannot make a nomon dsn from %q", dsn)
	}
	plain, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close(ctx)
	if _, _, _, err := syncStandbys(ctx, plain); err == nil || !strings.Contains(err.Error(), "pg_monitor") {
		t.Fatalf("a role without pg_monitor: err = %v, want one naming pg_monitor", err)
	}
}
