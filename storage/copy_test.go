package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// flipping is a store whose writes lose one bit, as a faulty disk or proxy
// would: the copy must notice.
type flipping struct{ storage.Store }

func (f flipping) Put(ctx context.Context, key string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	b[len(b)/2] ^= 1
	return f.Store.Put(ctx, key, bytes.NewReader(b))
}

func TestCopyDetectsACorruptedCopy(t *testing.T) {
	ctx := context.Background()
	src, _ := file.Open(t.TempDir())
	inner, _ := file.Open(t.TempDir())
	if err := src.Put(ctx, "c/base/1/part", strings.NewReader("the stored bytes of a backup part")); err != nil {
		t.Fatal(err)
	}
	_, err := storage.Copy(ctx, src, flipping{inner}, "c/base/1/part")
	if err == nil || !strings.Contains(err.Error(), "differs from the source") {
		t.Fatalf("copy through a store that flips a bit: %v, want a checksum error", err)
	}
	if _, err := inner.Stat(ctx, "c/base/1/part"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the bad copy was left in the target: %v", err)
	}
	res, err := storage.Copy(ctx, src, inner, "c/base/1/part")
	if err != nil || res.Skipped {
		t.Fatalf("copy to a sound store: %+v, %v", res, err)
	}
}
