package postgres

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/engine/enginetest"
	"github.com/drkit/drkit/internal/testenv"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
)

// The engine conformance suite on a real PostgreSQL: restores are real data
// folders, started, whose restore_command is drctl wal-fetch.
func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		Engine: Name,
		Start: func(t *testing.T) (string, string) {
			pg := &testenv.Postgres{}
			testenv.Start(t, pg)
			return pg.DSN("postgres"), ""
		},
		Write: func(t *testing.T, dsn string, v int) {
			conn := connect(t, dsn)
			defer conn.Close(context.Background())
			for _, q := range []string{"CREATE TABLE IF NOT EXISTS stamps (v int)", "INSERT INTO stamps VALUES (" + strconv.Itoa(v) + ")",
				"SELECT pg_switch_wal()"} { // a segment per write: the checks need several log objects
				if _, err := conn.Exec(context.Background(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		},
		Target: func(t *testing.T) (map[string]string, func(t *testing.T) []int) {
			dataDir := filepath.Join(testenv.OwnedDir(t, "postgres"), "data")
			if bin, err := pgsnap.BinDir("15"); err == nil {
				testenv.StopDataDir(t, bin, dataDir)
			}
			port := testenv.FreePort(t)
			flags := map[string]string{"target-dir": dataDir, "port": strconv.Itoa(port), "start": "true"}
			return flags, func(t *testing.T) []int {
				conn := connect(t, "postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/postgres?sslmode=disable")
				defer conn.Close(context.Background())
				rows, err := conn.Query(context.Background(), "SELECT v FROM stamps ORDER BY v")
				if err != nil {
					t.Fatal(err)
				}
				got, err := pgx.CollectRows(rows, pgx.RowTo[int])
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
		},
	})
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}
