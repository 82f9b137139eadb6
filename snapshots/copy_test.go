package snapshots_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

func region(t *testing.T, name string) *storage.Region {
	t.Helper()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &storage.Region{Name: name, Store: st, Pipeline: &storage.Pipeline{Store: st, Region: name}}
}

func put(t *testing.T, r *storage.Region, key, body string) {
	t.Helper()
	if err := r.Store.Put(context.Background(), key, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

func has(r *storage.Region, key string) bool {
	_, err := r.Store.Stat(context.Background(), key)
	return err == nil
}

var (
	sumA    = strings.Repeat("a", 64)
	sumB    = strings.Repeat("b", 64)
	binlogs = snapshots.LogLayout{Dir: "binlog", Slot: func(base string) string { s, _, _ := strings.Cut(base, "-"); return s }}
	quiet   = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// source holds one complete backup whose manifest lists its one part, one
// incomplete backup, two binlog chunks and cluster.json.
func source(t *testing.T) *storage.Region {
	r := region(t, "eu")
	put(t, r, "c/cluster.json", `{"engine":"mysql"}`)
	put(t, r, "c/binlog/000000000000-0000000001."+sumA+".raw", "chunk 0")
	put(t, r, "c/binlog/000000000001-0000000002."+sumB+".raw", "chunk 1")
	put(t, r, "c/base/b1/part-0", "12345")
	put(t, r, "c/base/b1/manifest.json", `{"tables":[{"parts":[{"key":"c/base/b1/part-0","size":5,"sha256":"`+sumA+`"}]}]}`)
	put(t, r, "c/base/b2/part-0", "half")
	return r
}

func TestCopySetCopiesCompleteBackupsAndLog(t *testing.T) {
	src, dst := source(t), region(t, "us")
	rep, err := snapshots.CopySet(context.Background(), "c", src, dst, binlogs, snapshots.CopyOptions{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"c/cluster.json", "c/base/b1/part-0", "c/base/b1/manifest.json", "c/binlog/000000000001-0000000002." + sumB + ".raw"} {
		if !has(dst, k) {
			t.Errorf("target lacks %s", k)
		}
	}
	if has(dst, "c/base/b2/part-0") {
		t.Error("an incomplete backup (no manifest) was copied")
	}
	if len(rep.Backups) != 1 || rep.Backups[0] != "b1" || len(rep.Incomplete) != 1 || rep.LogObjects != 2 || rep.Copied != 5 {
		t.Fatalf("report %+v", rep)
	}
}

func TestCopySetRefuses(t *testing.T) {
	ctx := context.Background()
	id, _ := age.GenerateX25519Identity()
	for _, tc := range []struct {
		name    string
		prepare func(src, dst *storage.Region)
		want    string
	}{
		{"different encryption", func(src, dst *storage.Region) {
			dst.Pipeline.Recipients = []age.Recipient{id.Recipient()}
		}, "give both regions the same encryption recipients"},
		{"another database under the name", func(src, dst *storage.Region) {
			put(t, dst, "c/cluster.json", `{"engine":"postgres"}`)
		}, "two different databases under one name"},
		{"another log history", func(src, dst *storage.Region) {
			put(t, dst, "c/binlog/000000000001-0000000009."+sumA+".raw", "drd's own chunk 1")
		}, "different log histories"},
		{"a backup missing a listed object", func(src, dst *storage.Region) {
			_ = src.Store.Delete(ctx, "c/base/b1/part-0")
		}, "the manifest lists c/base/b1/part-0"},
		{"nothing to copy", func(src, dst *storage.Region) {
			_ = src.Store.Delete(ctx, "c/cluster.json")
		}, "holds nothing of this cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := source(t), region(t, "us")
			tc.prepare(src, dst)
			_, err := snapshots.CopySet(ctx, "c", src, dst, binlogs, snapshots.CopyOptions{Log: quiet})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if has(dst, "c/base/b1/manifest.json") {
				t.Fatal("the refused copy left a complete backup in the target")
			}
		})
	}
}

// A damaged (truncated) source manifest is named and skipped: every other
// backup still reaches the target, and the copy ends with an error naming
// the damaged one (#22: one bad backup does not block a region).
func TestCopySetSkipsADamagedManifest(t *testing.T) {
	src, dst := source(t), region(t, "us")
	put(t, src, "c/base/b0/part-0", "abc")
	put(t, src, "c/base/b0/manifest.json", `{"tables":[{"parts":[{"key":"c/base/b0/pa`)
	rep, err := snapshots.CopySet(context.Background(), "c", src, dst, binlogs, snapshots.CopyOptions{Log: quiet})
	if err == nil || !strings.Contains(err.Error(), "skipped damaged backup(s) b0") || !strings.Contains(err.Error(), "everything else was copied") {
		t.Fatalf("copy with a damaged manifest: %v; want an error naming b0", err)
	}
	if !has(dst, "c/base/b1/manifest.json") || has(dst, "c/base/b0/manifest.json") {
		t.Error("the intact backup must be copied whole and the damaged one not made complete")
	}
	if len(rep.Damaged) != 1 || rep.Damaged[0].ID() != "b0" || len(rep.Backups) != 1 || rep.Backups[0] != "b1" {
		t.Fatalf("report %+v", rep)
	}
}

// A backup id already used in any region (a backup started the same
// millisecond, here or from another host) moves on to the next millisecond.
func TestNewBackupIDSkipsTakenIDs(t *testing.T) {
	a, b := region(t, "eu"), region(t, "us")
	at := time.Date(2026, 12, 4, 12, 0, 0, 5e6, time.UTC)
	put(t, b, "c/base/20261204T120000.005Z/part-0", "x")
	put(t, a, "c/base/20261204T120000.006Z/manifest.json", "{}")
	id, err := snapshots.NewBackupID(context.Background(), []*storage.Region{a, b}, "c", at)
	if err != nil || id != "20261204T120000.007Z" {
		t.Fatalf("NewBackupID = %q, %v; want 20261204T120000.007Z (.005 and .006 are taken)", id, err)
	}
}
