package mysql_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

// TestZeroRPO: with sync.mode remote_durable, MariaDB's semi-synchronous
// replication on (AFTER_SYNC, a 30 s fallback timeout once drd runs) and drd as its
// semi-sync replica, five times under writes the server and drd are
// SIGKILLed together, and a restore of the latest state from region us (the
// sync region) holds every commit that returned to a client: not one is
// missing. Each round also checks that no commit fell back to asynchronous
// replication (Rpl_semi_sync_master_no_tx), so the commits did wait for drd.
// The regions are file:// folders, or with DRKIT_ZERO_RPO_STORE=minio
// prefixes of a MinIO bucket.
func TestZeroRPO(t *testing.T) {
	src := &testenv.MariaDB{Args: []string{"--rpl-semi-sync-master-enabled=ON",
		"--rpl-semi-sync-master-timeout=1000", "--rpl-semi-sync-master-wait-point=AFTER_SYNC"}}
	// The five restores' servers start beside the source, at once.
	targets := make([]*testenv.MariaDB, 5)
	servers := []testenv.Server{src}
	for i := range targets {
		targets[i] = &testenv.MariaDB{}
		servers = append(servers, targets[i])
	}
	testenv.Start(t, servers...)
	e, db := haEnv(t, src, "")
	addSyncToCluster(t, e, "    sync: {mode: remote_durable, regions: [us]}\n")
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
	drd, _ := e.startDrd(t)
	if out, err := e.run("backup", "--cluster", "shop"); err != nil {
		t.Fatalf("drctl backup: %v\n%s", err, out)
	}

	var mu sync.Mutex
	var acked []int64
	next := int64(1)
	for round := 1; round <= 5; round++ {
		if round > 1 {
			src.Restart(t, true) // after the kill: crash recovery
			db = src.Open(t, "")
			drd, _ = e.startDrd(t)
		}
		// 1 s while drd was not there (the tables were made before it ran),
		// 30 s from now on: no commit of the round falls back.
		testenv.Exec(t, db, "SET GLOBAL rpl_semi_sync_master_timeout = 30000")
		mu.Lock()
		roundStart := len(acked)
		mu.Unlock()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 { // three writers: their commits share drd's chunks
			wg.Go(func() {
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
					if _, err := db.Exec("INSERT INTO shop.events VALUES (?)", id); err != nil {
						return // the server was killed: this commit did not return
					}
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			})
		}
		testenv.WaitFor(t, time.Minute, "commits return and the server waits for drd (Rpl_semi_sync_master_status ON)", func() bool {
			var name, status string
			if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'").Scan(&name, &status); err != nil || status != "ON" {
				return false
			}
			mu.Lock()
			defer mu.Unlock()
			return len(acked) > roundStart
		})
		// Commits before drd's first acknowledgement (the tables were made
		// before drd ran) waited out the timeout and turned semi-sync off
		// until drd caught up: count from when the server waits again.
		time.Sleep(500 * time.Millisecond)
		yes0, no0 := semiSyncCounts(t, db)
		time.Sleep(2 * time.Second)
		yes, no := semiSyncCounts(t, db)
		yes, no = yes-yes0, no-no0
		if err := src.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = drd.Process.Signal(syscall.SIGKILL)
		_ = drd.Wait()
		close(stop)
		wg.Wait()
		if no != 0 || yes == 0 { // in the last 2 s
			log, _ := os.ReadFile(filepath.Join(e.work, "drd.log"))
			t.Fatalf("round %d: %d commits were acknowledged by drd and %d fell back to asynchronous replication; want all acknowledged\ndrd log:\n%s",
				round, yes, no, lastLines(string(log), 20))
		}

		target := targets[round-1]
		if out, err := e.run("restore", "--cluster", "shop", "--to-region", "us", "--target-dsn", target.DSN("")); err != nil {
			t.Fatalf("round %d: drctl restore: %v\n%s", round, err, out)
		}
		present := map[int64]bool{}
		rows, err := target.Open(t, "").Query("SELECT id FROM shop.events")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			present[id] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		_ = target.Kill()
		var missing []int64
		for _, id := range acked {
			if !present[id] {
				missing = append(missing, id)
			}
		}
		t.Logf("round %d: %d commits returned so far, %d in this round (%d acknowledged semi-synchronously); the restore from us holds %d rows",
			round, len(acked), len(acked)-roundStart, yes, len(present))
		if len(missing) > 0 {
			t.Fatalf("round %d: %d returned commits are missing from the restore (first %v)", round, len(missing), missing[:min(5, len(missing))])
		}
	}
}

// useS3 moves the env's regions eu and us into prefixes eu-<name> and
// us-<name> of srv's bucket.
func (e *drkitEnv) useS3(t *testing.T, srv *testenv.S3, name string) {
	t.Helper()
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	for _, r := range []string{"eu", "us"} {
		old := "store: file://" + e.work + "/" + r + "\n"
		if !strings.Contains(s, old) {
			t.Fatalf("useS3: the config has no file:// region %s to move", r)
		}
		s = strings.ReplaceAll(s, old, "store: "+srv.StoreURL(r+"-"+name)+"\n")
	}
	if err := os.WriteFile(e.cfgPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// semiSyncCounts reads how many commits the server saw acknowledged by a
// semi-sync replica and how many went without (since it started).
func semiSyncCounts(t *testing.T, db *sql.DB) (yes, no int64) {
	t.Helper()
	rows, err := db.Query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_yes_tx', 'Rpl_semi_sync_master_no_tx')")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		if name == "Rpl_semi_sync_master_yes_tx" {
			yes = v
		} else {
			no = v
		}
	}
	return yes, no
}

// addSyncToCluster appends keys to the shop cluster (the last block of the
// env's config).
func addSyncToCluster(t *testing.T, e *drkitEnv, keys string) {
	t.Helper()
	appendFile(t, e.cfgPath, keys)
}

// appendFile appends text to the file at path.
func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
