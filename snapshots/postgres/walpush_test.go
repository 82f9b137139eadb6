package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

// archive_command mode, without drd: PostgreSQL archives through drctl
// wal-push; a restore from what it pushed reaches the last archived segment.
func TestArchiveCommandMode(t *testing.T) {
	drctl := testenv.Binary(t, "drctl")
	work := testenv.SharedDir(t)
	pg := &testenv.Postgres{Settings: map[string]string{
		"archive_mode":    "on",
		"archive_command": fmt.Sprintf("%s wal-push --config %s/drkit.yaml --cluster orders %%p", drctl, work),
	}}
	e := newEnvIn(t, work, pg)
	ctx := context.Background()
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t (v int)")
	e.backup(t)
	// wal-push runs as the postgres user: the file regions must be its to write.
	for _, r := range []string{"eu", "us"} {
		if err := chownTree(filepath.Join(work, r), "postgres"); err != nil {
			t.Fatal(err)
		}
	}
	testenv.PGExec(t, conn, "INSERT INTO t SELECT generate_series(1, 5000)")
	testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	deadline := time.Now().Add(20 * time.Second)
	for {
		// The archiver retries failures (the first run can precede the config
		// file); what counts is that the segments get archived.
		var archived int
		if err := conn.QueryRow(ctx, "SELECT archived_count FROM pg_stat_archiver").Scan(&archived); err != nil {
			t.Fatal(err)
		}
		if archived >= 2 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(e.pg.Dir, "postgres.log"))
			t.Fatalf("PostgreSQL archived %d segments through drctl wal-push in 20s; its log:\n%s", archived, tailString(string(log), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil {
		t.Fatalf("restore from archived WAL: %v\n%s", err, out)
	}
	var n int
	if err := connect(t, port).QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 5000 {
		t.Fatalf("restored %d rows (%v), want 5000", n, err)
	}
}

// chownTree gives a folder tree to the named user (when running as root).
func chownTree(root, name string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
