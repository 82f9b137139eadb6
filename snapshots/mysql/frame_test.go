package mysql

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// TestDamagedFrameNamesThePart: a part whose stored bytes match their
// recorded SHA-256 but whose frame is damaged (a bug, or a manifest written
// over damaged bytes) fails to read with a checksum error naming the object;
// an intact frame reads back as the text.
func TestDamagedFrameNamesThePart(t *testing.T) {
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := &storage.Pipeline{Store: st, Region: "eu", Level: 1}
	var text []byte
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 5000 {
		text = fmt.Appendf(text, "%d\t%x\t\\N\n", i, rng.Uint64())
	}
	frame, err := storage.CompressFrame(1, text)
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, stored []byte) storage.Object {
		sum := sha256.Sum256(stored)
		obj := p.Described(hex.EncodeToString(sum[:]), int64(len(stored)))
		obj.Key, obj.Compression = key, "none"
		obj, err := p.PutPlain(context.Background(), obj, &storage.Plain{Data: stored})
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	read := func(obj storage.Object) ([]byte, error) {
		rc, err := partSource{p: p, zstd: true}.open(context.Background(), obj)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	if got, err := read(put("shop/base/1/t00000-00001", frame)); err != nil || !bytes.Equal(got, text) {
		t.Fatalf("intact frame: %d bytes (%v), want the %d bytes of text", len(got), err, len(text))
	}
	damaged := map[string]func([]byte){
		"content checksum": func(b []byte) { b[len(b)-1] ^= 0xff },
		"compressed data":  func(b []byte) { b[len(b)/2] ^= 0xff },
		"truncated":        nil,
	}
	for name, damage := range damaged {
		b := bytes.Clone(frame)
		if damage != nil {
			damage(b)
		} else {
			b = b[:len(b)/2]
		}
		key := "shop/base/1/" + strings.ReplaceAll(name, " ", "-")
		_, err := read(put(key, b))
		if !errors.Is(err, storage.ErrChecksum) || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "region eu") {
			t.Errorf("%s: err = %v; want a checksum error naming region eu and %s", name, err, key)
		}
	}
}
