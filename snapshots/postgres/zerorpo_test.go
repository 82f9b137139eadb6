package postgres_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
)

// TestZeroRPO: with sync.mode remote_durable and the server listing drd in
// synchronous_standby_names, five times under pgbench load the primary and
// drd are SIGKILLed together, and a restore of the latest state from region
// us (the sync region) holds every commit that returned to a client before
// the kill: not one is missing. The primary then recovers and the next round
// goes on from its data. The regions are file:// folders, or with
// DRKIT_ZERO_RPO_STORE=minio prefixes of a MinIO bucket.
func TestZeroRPO(t *testing.T) {
	pg := &testenv.Postgres{Settings: map[string]string{"synchronous_standby_names": "drkit"}}
	e := newEnvFull(t, testenv.SharedDir(t), pg, "    sync: {mode: remote_durable, regions: [us]}\n")
	switch store := os.Getenv("DRKIT_ZERO_RPO_STORE"); store {
	case "", "file":
	case "minio":
		testenv.UseS3Credentials()
		minio := &testenv.MinIO{}
		testenv.Start(t, minio)
		e.useS3(t, &minio.S3, "zero-rpo")
	default:
		t.Fatalf("DRKIT_ZERO_RPO_STORE=%q: file or minio", store)
	}
	ctx := context.Background()
	bin, err := pgsnap.BinDir("15")
	if err != nil {
		t.Fatal(err)
	}
	pgbench := filepath.Join(bin, "pgbench")

	drd := e.startDrd(t)
	conn := connect(t, e.pg.Port) // commits wait for drd from here on
	testenv.PGExec(t, conn, "CREATE TABLE acked (id int PRIMARY KEY, payload text)")
	if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", e.pg.DSN("postgres")).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	conn.Close(ctx)
	e.backup(t)

	var mu sync.Mutex
	var acked []int
	next := 1
	for round := 1; round <= 5; round++ {
		if round > 1 {
			e.pg.Restart(t)
			drd = e.startDrd(t)
		}
		mu.Lock()
		roundStart := len(acked)
		mu.Unlock()
		load := exec.Command(pgbench, "-c", "2", "-T", "60", "-n", e.pg.DSN("postgres"))
		if err := load.Start(); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 { // two writers: their commits share drd's writes
			wg.Go(func() {
				w, err := pgx.Connect(ctx, e.pg.DSN("postgres"))
				if err != nil {
					t.Error(err)
					return
				}
				defer w.Close(context.Background())
				for {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					id := next
					next++
					mu.Unlock()
					if _, err := w.Exec(ctx, "INSERT INTO acked VALUES ($1, repeat('x', 200))", id); err != nil {
						return // the primary was killed: this commit did not return
					}
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			})
		}
		testenv.WaitFor(t, time.Minute, "commits return (drd streams in sync)", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) > roundStart
		})
		mu.Lock()
		flowing := len(acked)
		mu.Unlock()
		time.Sleep(2 * time.Second)
		if err := e.pg.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := drd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = drd.Wait()
		close(stop)
		wg.Wait()
		_ = load.Process.Kill()
		_ = load.Wait()
		if len(acked) == flowing {
			t.Fatalf("round %d: no commit returned in the 2 s before the kill\ndrd log:\n%s", round, tailString(e.drdLog(), 30))
		}

		dataDir, port, out, err := e.restore(t, "--to-region", "us", "--start")
		if err != nil {
			t.Fatalf("round %d: drctl restore: %v\n%s\ndrd log:\n%s", round, err, out, tailString(e.drdLog(), 30))
		}
		present := restoredIDs(t, port)
		testenv.StopDataDir(t, bin, dataDir)
		var missing []int
		for _, id := range acked {
			if !present[id] {
				missing = append(missing, id)
			}
		}
		t.Logf("round %d: %d commits returned so far, %d in this round; the restore from us holds %d rows of acked", round, len(acked), len(acked)-roundStart, len(present))
		if len(missing) > 0 {
			t.Fatalf("round %d: %d returned commits are missing from the restore (first %v)", round, len(missing), missing[:min(5, len(missing))])
		}
	}
}

// restoredIDs reads the ids in acked on the restored server at port.
func restoredIDs(t *testing.T, port int) map[int]bool {
	t.Helper()
	c := connect(t, port)
	rows, err := c.Query(context.Background(), "SELECT id FROM acked")
	if err != nil {
		t.Fatal(err)
	}
	present := map[int]bool{}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		present[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
	return present
}
