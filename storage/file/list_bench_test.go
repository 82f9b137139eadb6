package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drkit/drkit/storage"
)

// BenchmarkListOneSegment is what wal-fetch does once per segment: list the
// objects of one segment in a folder of 20,000 (320 GB of 16 MiB WAL).
func BenchmarkListOneSegment(b *testing.B) {
	root := b.TempDir()
	dir := filepath.Join(root, "orders", "wal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	for i := range 20000 {
		name := fmt.Sprintf("00000001%016X.%064x.zst", i, i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	s, err := Open(root)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		n := 0
		for _, err := range s.List(context.Background(), fmt.Sprintf("orders/wal/00000001%016X.", i%20000)) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1 {
			b.Fatalf("listed %d objects, want 1", n)
		}
	}
}

// A region holds every row of the database: its objects are the owner's
// alone unless the URL's mode lets a group read; folders follow, and a bad
// mode is refused by name.
func TestModes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		query      string
		file, fold os.FileMode
	}{{"", 0o600, 0o700}, {"?mode=0640", 0o640, 0o750}, {"?mode=644", 0o644, 0o755}} {
		root := filepath.Join(t.TempDir(), "region")
		s, err := storage.Open(ctx, "file://"+root+tc.query, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "orders/wal/x", strings.NewReader("wal")); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]os.FileMode{root: tc.fold, filepath.Join(root, "orders"): tc.fold, filepath.Join(root, "orders", "wal"): tc.fold, filepath.Join(root, "orders", "wal", "x"): tc.file} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s%s: %s has mode %v (%v), want %v", root, tc.query, p, fi.Mode().Perm(), err, want)
			}
		}
	}
	for _, bad := range []string{"?mode=0400", "?mode=rw", "?mode=0777", "?mode=4755"} {
		if _, err := storage.Open(ctx, "file://"+t.TempDir()+bad, storage.Options{}); err == nil || !strings.Contains(err.Error(), "mode") {
			t.Errorf("%s: %v, want a refusal naming the mode", bad, err)
		}
	}
}
