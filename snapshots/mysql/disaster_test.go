package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/drkit/drkit/internal/testenv"
)

// drkitEnv is a source, a config with two file:// regions, and the real
// drd and drctl binaries.
type drkitEnv struct {
	src     *testenv.MariaDB
	work    string
	cfgPath string
	drctl   string
}

func newDrkitEnv(t *testing.T, src *testenv.MariaDB, flush time.Duration) *drkitEnv {
	t.Helper()
	e := &drkitEnv{src: src, work: t.TempDir(), drctl: testenv.Binary(t, "drctl")}
	e.cfgPath = filepath.Join(e.work, "drkit.yaml")
	cfg := fmt.Sprintf(`regions:
  - name: eu
    store: file://%[1]s/eu
  - name: us
    store: file://%[1]s/us
clusters:
  - name: shop
    engine: mysql
    region: eu
    dsn: root@tcp(127.0.0.1:%[2]d)/
    flush_interval: %[3]s
    base_backup:
      schedule: "@every 4s"
`, e.work, src.Port, flush)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// startDrd runs drd until the test ends and waits until it ships.
func (e *drkitEnv) startDrd(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	return e.startDrdLog(t, "drd.log")
}

// startDrdLog is startDrd logging into the work folder's file name.
func (e *drkitEnv) startDrdLog(t *testing.T, name string) (*exec.Cmd, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(e.work, name))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Binary(t, "drd"), "--config", e.cfgPath, "--listen", addr, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	testenv.WaitFor(t, 30*time.Second, "drd is ready (see drd.log)", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return cmd, addr
}

func (e *drkitEnv) run(args ...string) (string, error) {
	cmd := exec.Command(e.drctl, append(args, "--config", e.cfgPath)...)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// TestDisaster: under write load, with a clean restart of the source in the
// middle, SIGKILL mariadbd and drd, lose region eu, and restore the latest
// state from region us alone: every commit acknowledged more than 2 x
// flush_interval before the kill is there.
func TestDisaster(t *testing.T) {
	src := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	target := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	corruptTarget := &testenv.MariaDB{}
	testenv.Start(t, src, target, corruptTarget)
	const flush = 500 * time.Millisecond
	e := newDrkitEnv(t, src, flush)
	db := src.Open(t, "")
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.events (id INT PRIMARY KEY, at DATETIME(6))")
	drd, addr := e.startDrd(t)
	if out, err := e.run("backup", "--cluster", "shop"); err != nil {
		t.Fatalf("drctl backup: %v\n%s", err, out)
	}

	// A writer commits ids in order and notes when each commit returned.
	var mu sync.Mutex
	acked := map[int]time.Time{}
	ctx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w, _ := sql.Open("mysql", src.DSN(""))
		defer w.Close()
		for id := 1; ctx.Err() == nil; {
			_, err := w.ExecContext(ctx, "INSERT INTO shop.events VALUES (?, NOW(6))", id)
			var myErr *mysqldriver.MySQLError
			if errors.As(err, &myErr) && myErr.Number == 1062 {
				id++ // committed, but the answer was lost in the restart: not acknowledged
				continue
			}
			if err != nil {
				time.Sleep(20 * time.Millisecond) // the server restarts or died
				continue
			}
			mu.Lock()
			acked[id] = time.Now()
			mu.Unlock()
			id++
		}
	}()
	time.Sleep(2 * time.Second)
	src.Restart(t, false) // drd must resume without gap or duplicate
	time.Sleep(3 * time.Second)

	// drd's scheduled backups and its shipping show in its metrics; drctl
	// status reads the regions, or asks drd's API.
	testenv.WaitFor(t, 20*time.Second, "drd exports MySQL shipping and backup metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `drkit_log_shipped_timestamp_seconds{cluster="shop",engine="mysql",region="us"}`) &&
			strings.Contains(string(b), `drkit_backup_last_success_timestamp_seconds{cluster="shop",engine="mysql",region="us"}`)
	})
	if out, err := e.run("status", "--cluster", "shop", "--source", "stores"); err != nil || !strings.Contains(out, "GTID 0-") {
		t.Fatalf("drctl status --source stores: %v\n%s", err, out)
	}
	if out, err := e.run("status", "--cluster", "shop", "--source", "drd", "--drd", "http://"+addr); err != nil || !regexp.MustCompile(`shop\s+us\s+\S+Z\s+\d`).MatchString(out) ||
		!regexp.MustCompile(`shop\s+primary\s+\S+\s+yes`).MatchString(out) {
		t.Fatalf("drctl status --source drd: want region us's shipping and the primary up: %v\n%s", err, out)
	}

	killed := time.Now()
	if err := src.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := drd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	stopWriter()
	<-writerDone
	if err := os.RemoveAll(filepath.Join(e.work, "eu")); err != nil {
		t.Fatal(err)
	}

	out, err := e.run("restore", "--cluster", "shop", "--to-region", "us", "--target-dsn", target.DSN(""))
	if err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
	tdb := target.Open(t, "")
	have := map[int]bool{}
	rows, err := tdb.Query("SELECT id FROM shop.events")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		rows.Scan(&id)
		have[id] = true
	}
	rows.Close()
	missing, must := 0, 0
	for id, at := range acked {
		if killed.Sub(at) > 2*flush {
			must++
			if !have[id] {
				missing++
			}
		}
	}
	t.Logf("%d commits acknowledged, %d of them more than %s before the kill; restored %d rows", len(acked), must, 2*flush, len(have))
	if must < 50 || missing > 0 {
		t.Fatalf("%d of %d commits acknowledged more than %s before the kill are missing (want 0 of at least 50)\n%s", missing, must, 2*flush, out)
	}
	if out, err := e.run("verify", "--cluster", "shop", "--region", "us"); err != nil {
		t.Fatalf("drctl verify: %v\n%s", err, out)
	}

	// A corrupted binlog chunk the restore needs (the newest: chunks wholly
	// before the snapshot's position are not read): the restore fails and
	// names it.
	chunks, _ := filepath.Glob(filepath.Join(e.work, "us", "shop", "binlog", "*"))
	if len(chunks) < 3 {
		t.Fatalf("only %d binlog chunks in us", len(chunks))
	}
	bad := chunks[len(chunks)-1]
	b, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = e.run("restore", "--cluster", "shop", "--to-region", "us", "--target-dsn", corruptTarget.DSN(""))
	if err == nil || !strings.Contains(out, filepath.Base(bad)) {
		t.Fatalf("restore over a corrupt chunk: err=%v, want an error naming %s:\n%s", err, filepath.Base(bad), out)
	}
	if out, err := e.run("verify", "--cluster", "shop", "--region", "us"); err == nil || !strings.Contains(out, filepath.Base(bad)) {
		t.Fatalf("drctl verify over a corrupt chunk: err=%v, want a problem naming %s:\n%s", err, filepath.Base(bad), out)
	}
}
