package testenv

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Logger is the log of the code a test runs: to stderr under go test -v;
// else its last logTail lines are kept and printed only if the test fails,
// so that a failure in CI (which runs without -v) shows what drd's code said
// before it.
func Logger(tb testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tail := &lineTail{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("the last %d lines the code under test logged:\n%s", logTail, tail.String())
		}
	})
	return slog.New(slog.NewTextHandler(tail, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logTail is how many log lines a failed test prints.
const logTail = 200

// lineTail keeps the last logTail lines written to it. slog's handler writes
// one whole line per call.
type lineTail struct {
	mu    sync.Mutex
	lines []string
	next  int
}

func (l *lineTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := string(p)
	if len(l.lines) < logTail {
		l.lines = append(l.lines, line)
	} else {
		l.lines[l.next] = line
		l.next = (l.next + 1) % logTail
	}
	return len(p), nil
}

func (l *lineTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines[l.next:], "") + strings.Join(l.lines[:l.next], "")
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
