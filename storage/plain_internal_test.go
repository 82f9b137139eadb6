package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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
	if len(pl.encodings) != 2 {
		t.Fatalf("%d encodings made for 2 levels", len(pl.encodings))
	}
	for i := 2; i < len(outs); i++ {
		if &outs[i][0] != &outs[i%2][0] {
			t.Fatalf("writer %d got its own compression of level %d", i, 1+2*(i%2))
		}
	}
}

// TestPlainFramesOncePerLevel: a frame is made once per level however many
// regions ask, level 0 is the data itself, and each comes with the SHA-256
// of what it returns; frames and the pipeline's compression are kept apart.
func TestPlainFramesOncePerLevel(t *testing.T) {
	pl := &Plain{Data: bytes.Repeat([]byte("part "), 1<<20)}
	var wg sync.WaitGroup
	frames := make([][]byte, 8)
	sums := make([]string, 8)
	for i := range frames {
		wg.Go(func() {
			var err error
			if frames[i], sums[i], err = pl.Frame(i % 2); err != nil { // levels 0 and 1
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := pl.compressed(1); err != nil {
		t.Fatal(err)
	}
	if len(pl.encodings) != 3 {
		t.Fatalf("%d encodings made for frames at 2 levels and one compression", len(pl.encodings))
	}
	for i := range frames {
		if &frames[i][0] != &frames[i%2][0] {
			t.Fatalf("writer %d got its own frame at level %d", i, i%2)
		}
		if sum := sha256.Sum256(frames[i]); sums[i] != hex.EncodeToString(sum[:]) {
			t.Fatalf("writer %d: SHA-256 %s is not its frame's", i, sums[i])
		}
	}
	if !bytes.Equal(frames[0], pl.Data) || len(frames[1]) >= len(pl.Data) {
		t.Fatalf("level 0 frame %d bytes, level 1 frame %d bytes, data %d: want the data itself and a smaller frame", len(frames[0]), len(frames[1]), len(pl.Data))
	}
}
