package postgres_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
)

func (e *env) drctlRun(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(e.drctl, append(args, "--config", e.cfgPath)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestVerifyAndStatus(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE big (v text)")
	m := e.backup(t)
	for range 3 {
		testenv.PGExec(t, conn, "INSERT INTO big SELECT repeat(md5(g::text), 20) FROM generate_series(1, 20000) g")
		testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	}
	testenv.PGExec(t, conn, "INSERT INTO big VALUES ('open segment')")
	e.waitShipped(t, conn)

	out, code := e.drctlRun(t, "verify", "--cluster", "orders", "--region", "us")
	if code != 0 || !strings.Contains(out, "OK: WAL continuity checked") || !strings.Contains(out, "uploading") {
		t.Fatalf("verify of a healthy region: exit %d\n%s", code, out)
	}

	out, code = e.drctlRun(t, "status", "--json")
	var st []struct {
		Region     string
		DurableLSN string               `json:"durable_lsn"`
		LagBytes   *int64               `json:"lag_bytes"`
		LastBackup *struct{ ID string } `json:"last_backup"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 2 {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
	for _, s := range st {
		if s.DurableLSN == "" || s.LagBytes == nil || s.LastBackup == nil || s.LastBackup.ID != m.ID {
			t.Fatalf("status of region %s = %+v", s.Region, s)
		}
	}

	// Remove a whole segment in the middle: verify names it and fails.
	walDir := filepath.Join(e.work, "us", "orders", "wal")
	entries, _ := os.ReadDir(walDir)
	var victim string
	var whole []string
	for _, en := range entries {
		if !en.IsDir() && !strings.Contains(en.Name(), "history") {
			whole = append(whole, en.Name())
		}
	}
	if len(whole) < 3 {
		t.Fatalf("only %d whole segments", len(whole))
	}
	victim = whole[len(whole)-2]
	if err := os.Remove(filepath.Join(walDir, victim)); err != nil {
		t.Fatal(err)
	}
	out, code = e.drctlRun(t, "verify", "--cluster", "orders", "--region", "us")
	if code == 0 || !strings.Contains(out, victim[:24]+" is missing") {
		t.Fatalf("verify after removing %s: exit %d\n%s", victim, code, out)
	}

	// A corrupted chunk in eu fails the checksum check.
	flipByte(t, filepath.Join(e.work, "eu", "orders", "base", m.ID), func(rel string) bool { return strings.HasPrefix(rel, "chunk-00000") })
	out, code = e.drctlRun(t, "verify", "--cluster", "orders", "--region", "eu")
	if code == 0 || !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("verify of a corrupted backup: exit %d\n%s", code, out)
	}
}
