package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
	"github.com/drkit/drkit/storage/storetest"
)

type mode struct {
	name    string
	level   int
	encrypt bool
}

var modes = []mode{{"plain", 0, false}, {"zstd", 3, false}, {"age", 0, true}, {"zstd+age", 3, true}}

func pipeline(t *testing.T, m mode) (*storage.Pipeline, string) {
	t.Helper()
	root := t.TempDir()
	st, err := file.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	p := &storage.Pipeline{Store: st, Region: "eu-west-1", Level: m.level}
	if m.encrypt {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		p.Recipients, p.Identities = []age.Recipient{id.Recipient()}, []age.Identity{id}
	}
	return p, root
}

func readAll(t *testing.T, p *storage.Pipeline, obj storage.Object) ([]byte, error) {
	t.Helper()
	rc, err := p.Open(context.Background(), obj)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestPipelineRoundTrip(t *testing.T) {
	compressible := bytes.Repeat([]byte("INSERT INTO orders VALUES (42, 'pending');\n"), 100000)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			p, _ := pipeline(t, m)
			small := compressible[:1<<20]
			// Put streams; PutBytes encodes in memory with a 1 MiB window, also
			// data longer than that, and above 16 MiB (base backup chunks) with
			// pooled default-window encoders.
			big := bytes.Repeat(compressible, 5)[:17<<20+3]
			for i := range 16 {
				data := [][]byte{{}, []byte("x"), storetest.Data(5, 3<<20+11), compressible, small, storetest.Data(6, 1000), storetest.Data(7, 17<<20+5), big}[i/2]
				key := fmt.Sprintf("obj/%d", i)
				obj, err := p.Put(context.Background(), key, bytes.NewReader(data))
				if i%2 == 1 {
					d := p.Describe(data)
					d.Key = key
					obj, err = p.PutBytes(context.Background(), d, data)
				}
				if m.level > 0 && (len(data) == len(small) || len(data) == len(big)) && obj.Size*20 > obj.PlainSize {
					t.Fatalf("%d bytes stored as %d: not compressed", len(data), obj.Size)
				}
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				sum := sha256.Sum256(data)
				if obj.PlainSize != int64(len(data)) || obj.SHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("record %+v does not describe the %d-byte plaintext", obj, len(data))
				}
				info, err := p.Store.Stat(context.Background(), key)
				if err != nil || info.Size != obj.Size {
					t.Fatalf("stored size %d (%v), record says %d", info.Size, err, obj.Size)
				}
				got, err := readAll(t, p, obj)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(data))
				}
			}
		})
	}
}

func TestPipelineCompresses(t *testing.T) {
	p, _ := pipeline(t, mode{"zstd", 3, false})
	data := bytes.Repeat([]byte("WAL record 0000000100000000000000A1\n"), 200000)
	obj, err := p.Put(context.Background(), "c", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size*20 > obj.PlainSize {
		t.Fatalf("zstd stored %d bytes of %d: not compressed", obj.Size, obj.PlainSize)
	}
}

// Flipping one stored byte must make a full read fail with the key and region.
func TestPipelineDetectsCorruption(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			p, root := pipeline(t, m)
			obj, err := p.Put(context.Background(), "wal/000000010000000000000001", bytes.NewReader(storetest.Data(8, 1<<20)))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(root, "wal", "000000010000000000000001")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x01
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = readAll(t, p, obj)
			if !errors.Is(err, storage.ErrChecksum) {
				t.Fatalf("reading a corrupted object = %v, want ErrChecksum", err)
			}
			for _, want := range []string{"wal/000000010000000000000001", "eu-west-1"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
}

func TestPipelineManifestMismatch(t *testing.T) {
	p, _ := pipeline(t, mode{"zstd", 3, false})
	obj, err := p.Put(context.Background(), "k", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	bad := obj
	bad.SHA256 = strings.Repeat("0", 64)
	if _, err := readAll(t, p, bad); !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("read with a wrong SHA-256 = %v, want ErrChecksum", err)
	}
	bad = obj
	bad.Size++
	if _, err := readAll(t, p, bad); !errors.Is(err, storage.ErrChecksum) {
		t.Fatalf("read with a wrong stored size = %v, want ErrChecksum", err)
	}
}

func TestPipelineWrongIdentity(t *testing.T) {
	p, _ := pipeline(t, mode{"age", 0, true})
	obj, err := p.Put(context.Background(), "secret", strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	p.Identities = []age.Identity{other}
	_, err = readAll(t, p, obj)
	if err == nil || !strings.Contains(err.Error(), "identity") || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("read with the wrong identity = %v; want an error about the identity naming the key", err)
	}
	p.Identities = nil
	if _, err = readAll(t, p, obj); err == nil || !strings.Contains(err.Error(), "identity_file") {
		t.Fatalf("read without identities = %v; want the config hint", err)
	}
}

func TestPipelinePutFailureIsReported(t *testing.T) {
	p, _ := pipeline(t, mode{"zstd", 3, false})
	if _, err := p.Put(context.Background(), "../escape", strings.NewReader("x")); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("Put to a bad key = %v", err)
	}
}

// TestPutPlainSharesCompression writes one plaintext to five regions (two at
// level 1, one at level 1 encrypted, one at level 3, one uncompressed): each
// reads it back; the plain level-1 regions hold the same bytes, the encrypted
// one others.
func TestPutPlainSharesCompression(t *testing.T) {
	data := bytes.Repeat([]byte("UPDATE accounts SET balance = balance + 1 WHERE id = 42;\n"), 400000) // 22 MiB: the bulk encoder
	modes := []mode{{"zstd1", 1, false}, {"zstd1 again", 1, false}, {"zstd1+age", 1, true}, {"zstd3", 3, false}, {"plain", 0, false}}
	plain := &storage.Plain{Data: data}
	sum := sha256.Sum256(data)
	var stored [][]byte
	for _, m := range modes {
		p, _ := pipeline(t, m)
		obj := p.Described(hex.EncodeToString(sum[:]), int64(len(data)))
		obj.Key = "base/1/chunk-00000"
		obj, err := p.PutPlain(context.Background(), obj, plain)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		got, err := readAll(t, p, obj)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes (%v), want %d", m.name, len(got), err, len(data))
		}
		raw := storedBytes(t, p, obj.Key)
		stored = append(stored, raw)
	}
	switch {
	case !bytes.Equal(stored[0], stored[1]):
		t.Fatal("two level-1 regions stored different bytes")
	case bytes.Equal(stored[0], stored[2]):
		t.Fatal("the encrypted region stored the plain compressed bytes")
	case len(stored[0]) >= len(data)/20:
		t.Fatalf("level 1 stored %d of %d bytes: not compressed", len(stored[0]), len(data))
	case len(stored[4]) != len(data):
		t.Fatalf("the uncompressed region stored %d bytes, want %d", len(stored[4]), len(data))
	}
}

// TestPutPlainStoresAsToldNone: an object described as uncompressed (data the
// database compressed already) is stored as it is by a compressing pipeline,
// recorded so, and read back; encryption still applies.
func TestPutPlainStoresAsToldNone(t *testing.T) {
	data := bytes.Repeat([]byte("already compressed, say\n"), 100000)
	sum := sha256.Sum256(data)
	for _, m := range []mode{{"zstd1", 1, false}, {"zstd1+age", 1, true}} {
		p, _ := pipeline(t, m)
		obj := p.Described(hex.EncodeToString(sum[:]), int64(len(data)))
		obj.Key, obj.Compression = "base/1/chunk-00000", "none"
		obj, err := p.PutPlain(context.Background(), obj, &storage.Plain{Data: data})
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if obj.Compression != "none" {
			t.Fatalf("%s: recorded compression %q, want none", m.name, obj.Compression)
		}
		if got, err := readAll(t, p, obj); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes (%v), want %d", m.name, len(got), err, len(data))
		}
		raw := storedBytes(t, p, obj.Key)
		if m.encrypt == bytes.Equal(raw, data) || len(raw) < len(data) {
			t.Fatalf("%s: stored %d bytes (plaintext: %v) for %d", m.name, len(raw), bytes.Equal(raw, data), len(data))
		}
	}
}

// storedBytes is what the store holds under key, as stored.
func storedBytes(t *testing.T, p *storage.Pipeline, key string) []byte {
	t.Helper()
	rc, err := p.Store.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
