package storage

import (
	"bytes"
	"sync"
	"testing"
)

// TestPlainCompressesOncePerLevel: regions writing one plaintext at the same
// time share its compression: one per level, whatever the number of writers.
func TestPlainCompressesOncePerLevel(t *testing.T) {
	pl := &Plain{Data: bytes.Repeat([]byte("chunk "), 1<<20)}
	var wg sync.WaitGroup
	outs := make([][]byte, 8)
	for i := range outs {
		wg.Go(func() {
			out, err := pl.compressed(1 + 2*(i%2)) // levels 1 and 3
			if err != nil {
				t.Error(err)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	if len(pl.byLevel) != 2 {
		t.Fatalf("%d encodings made for 2 levels", len(pl.byLevel))
	}
	for i := 2; i < len(outs); i++ {
		if &outs[i][0] != &outs[i%2][0] {
			t.Fatalf("writer %d got its own compression of level %d", i, 1+2*(i%2))
		}
	}
}
