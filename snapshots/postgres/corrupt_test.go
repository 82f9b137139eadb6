package postgres_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
)

// flipByte corrupts one stored byte of each file the filter selects under root
// and returns their paths.
func flipByte(t *testing.T, root string, pick func(rel string) bool) []string {
	t.Helper()
	var hit []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !pick(rel) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0x40
		hit = append(hit, rel)
		return os.WriteFile(p, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(hit) == 0 {
		t.Fatal("nothing to corrupt")
	}
	return hit
}

// A corrupted WAL segment aborts recovery (wal-fetch exits 127) and the error
// names the object; it never ends recovery early with the WAL missing.
func TestRestoreFailsOnCorruptWAL(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE big (v text)")
	m := e.backup(t)
	testenv.PGExec(t, conn, "INSERT INTO big SELECT repeat(md5(g::text), 40) FROM generate_series(1, 30000) g")
	testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	testenv.PGExec(t, conn, "INSERT INTO big VALUES ('after')")
	e.waitShipped(t, conn)
	stopSeg := m.StopLSN
	hit := flipByte(t, filepath.Join(e.work, "us", "orders", "wal"), func(rel string) bool {
		return !strings.Contains(rel, ".partial") && !strings.Contains(rel, "history") && rel > "000000010000000000000000" && !strings.HasPrefix(rel, segmentPrefixBefore(stopSeg))
	})
	_, _, out, err := e.restore(t, "--to-region", "us", "--start")
	if err == nil {
		t.Fatalf("restore with corrupted WAL (%v) succeeded:\n%s", hit, out)
	}
	if !strings.Contains(out, "checksum mismatch") || !strings.Contains(out, "orders/wal/00000001") || !strings.Contains(out, "FATAL") {
		t.Fatalf("recovery did not abort naming the corrupted WAL object:\n%s", out)
	}
}

// segmentPrefixBefore keeps the segment holding the backup's stop position
// intact (it travels inside the backup); later ones are corrupted.
func segmentPrefixBefore(stopLSN string) string {
	hi, lo, _ := strings.Cut(stopLSN, "/")
	for len(lo) < 8 {
		lo = "0" + lo
	}
	for len(hi) < 8 {
		hi = "0" + hi
	}
	return "00000001" + hi + "000000" + lo[:2]
}

func TestRestoreFailsOnCorruptBackupChunk(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	m := e.backup(t)
	flipByte(t, filepath.Join(e.work, "us", "orders", "base", m.ID), func(rel string) bool { return strings.HasPrefix(rel, "chunk-00001") })
	_, _, out, err := e.restore(t, "--to-region", "us")
	if err == nil {
		t.Fatalf("restore from a corrupted chunk succeeded:\n%s", out)
	}
	if !strings.Contains(out, "chunk-00001") || !strings.Contains(out, "region us") {
		t.Fatalf("the failure does not name the chunk and region:\n%s", out)
	}
}
