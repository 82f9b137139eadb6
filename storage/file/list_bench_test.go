package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
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
