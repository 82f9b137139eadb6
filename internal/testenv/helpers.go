package testenv

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Logger is a test's log: to stderr under go test -v, else discarded.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Exec runs each statement on db (MariaDB), failing the test at the first
// error, which names the statement.
func Exec(tb testing.TB, db *sql.DB, qs ...string) {
	tb.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

// PGExec runs one statement on a PostgreSQL connection, failing the test on
// an error, which names the statement.
func PGExec(tb testing.TB, conn *pgx.Conn, sql string, args ...any) {
	tb.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}
