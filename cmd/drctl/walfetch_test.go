package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/all"
)

// wal-fetch's exit code is what PostgreSQL acts on: 1 ends recovery as "no
// more WAL" and promotes, so it must mean exactly that; anything else, a
// missing or damaged cluster.json included, exits 127 and aborts recovery.
func TestWALFetchExitCodes(t *testing.T) {
	root := t.TempDir()
	cfg := writeFile(t, "regions: [{name: a, store: 'file://"+root+"'}]\nclusters:\n  - {name: c, engine: postgres, region: a, dsn: 'postgres://u@127.0.0.1:1/db'}\n")
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	const seg = "000000010000000000000003"
	fetch := func() (int, string) {
		code, _, errOut := drctl(t, "wal-fetch", "--config", cfg, seg, dest)
		return code, errOut
	}
	// A bad command line from a hand-edited restore_command aborts too.
	for _, args := range [][]string{{"wal-fetch", "--config", cfg, seg}, {"wal-fetch", "--config", cfg, "--prefetch=x", seg, dest}} {
		if code, _, errOut := drctl(t, args...); code != exitWALAbort {
			t.Errorf("%q: exit %d (%s), want %d", args, code, errOut, exitWALAbort)
		}
	}
	if code, errOut := fetch(); code != exitWALAbort || !strings.Contains(errOut, "cluster.json") {
		t.Fatalf("no cluster.json: exit %d (%s); want %d naming cluster.json", code, errOut, exitWALAbort)
	}
	info := filepath.Join(root, "c", "cluster.json")
	os.MkdirAll(filepath.Dir(info), 0o700)
	os.WriteFile(info, []byte(`{"engine":"postgres","system_identifier":"1","wal_segment_size":0}`), 0o600)
	if code, errOut := fetch(); code != exitWALAbort || !strings.Contains(errOut, "segment size") {
		t.Fatalf("wal_segment_size 0: exit %d (%s); want %d naming the segment size", code, errOut, exitWALAbort)
	}
	os.WriteFile(info, []byte(`{"engine":"postgres"`), 0o600)
	if code, _ := fetch(); code != exitWALAbort {
		t.Fatalf("truncated cluster.json: exit %d, want %d", code, exitWALAbort)
	}
	os.WriteFile(info, []byte(`{"engine":"postgres","system_identifier":"1","wal_segment_size":16777216}`), 0o600)
	if code, errOut := fetch(); code != exitWALNotFound {
		t.Fatalf("missing segment: exit %d (%s), want %d", code, errOut, exitWALNotFound)
	}

	st, err := storage.Open(context.Background(), "file://"+root, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{7}, 16<<20)
	cat := &pgwal.Catalog{Pipeline: &storage.Pipeline{Store: st, Region: "a"}, Cluster: "c"}
	if err := cat.PutSegment(context.Background(), seg, data); err != nil {
		t.Fatal(err)
	}
	if code, errOut := fetch(); code != exitOK {
		t.Fatalf("stored segment: exit %d (%s)", code, errOut)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatalf("fetched %d bytes, not the segment", len(got))
	}
	os.Remove(dest)
	matches, _ := filepath.Glob(filepath.Join(root, "c", "wal", seg+".*"))
	b, _ := os.ReadFile(matches[0])
	b[len(b)/2] ^= 1
	os.WriteFile(matches[0], b, 0o600)
	if code, errOut := fetch(); code != exitWALAbort || !strings.Contains(errOut, seg) {
		t.Fatalf("corrupt segment: exit %d (%s), want %d naming it", code, errOut, exitWALAbort)
	}
}

// wal-push succeeds when every required region holds the file: an optional
// region that cannot be written is reported, not a failure (pg_wal would
// fill); a required one fails it.
func TestWALPushFollowsRequiredRegions(t *testing.T) {
	good, blocked := t.TempDir(), filepath.Join(t.TempDir(), "not-a-folder")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil { // a file where the region's folder should be
		t.Fatal(err)
	}
	seg := filepath.Join(t.TempDir(), "000000010000000000000007")
	if err := os.WriteFile(seg, bytes.Repeat([]byte{1}, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(required string) string {
		return writeFile(t, "regions:\n  - {name: a, store: 'file://"+good+"'}\n  - {name: b, store: 'file://"+blocked+"'}\n"+
			"clusters:\n  - {name: c, engine: postgres, region: a, dsn: 'postgres://u@127.0.0.1:1/db', required_regions: ["+required+"]}\n")
	}
	code, _, errOut := drctl(t, "wal-push", "--config", config("a"), seg)
	if code != exitOK || !strings.Contains(errOut, "optional region b") {
		t.Fatalf("wal-push with optional region b down: exit %d, stderr %q; want 0 and a warning naming b", code, errOut)
	}
	if m, _ := filepath.Glob(filepath.Join(good, "c", "wal", "000000010000000000000007.*")); len(m) != 1 {
		t.Fatalf("region a holds %v", m)
	}
	if code, _, errOut := drctl(t, "wal-push", "--config", config("a, b"), seg); code == exitOK || !strings.Contains(errOut, "required region b") {
		t.Fatalf("wal-push with required region b down: exit %d, stderr %q; want a failure naming b", code, errOut)
	}
}
