package redis

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// A chunk is read from a store, which is untrusted: whatever its bytes, the
// reader returns commands within the header's bounds or an error, never
// panics, and never allocates more than one bounded command at a time.
// Seeds: testdata/fuzz/FuzzChunkReader and the valid chunk below.
func FuzzChunkReader(f *testing.F) {
	h := ChunkHeader{ReplID: "0123456789012345678901234567890123456789", Start: 100, End: 160, Commands: 2, DB: 0, EndDB: 2, FirstMS: 1, LastMS: 2}
	valid := encodeChunk(h, []Command{
		{MS: 1, End: 123, RESP: []byte("*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n")},
		{MS: 2, End: 160, RESP: []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")},
	})
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add([]byte(chunkMagic + "{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cr, err := NewChunkReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for n := 0; ; n++ {
			c, err := cr.Next()
			if errors.Is(err, io.EOF) || err != nil {
				if err == io.EOF && n != cr.Header.Commands {
					t.Fatalf("EOF after %d commands, the header counts %d", n, cr.Header.Commands)
				}
				return
			}
			if c.End <= cr.Header.Start || c.End > cr.Header.End {
				t.Fatalf("command end %d outside the chunk (%d, %d]", c.End, cr.Header.Start, cr.Header.End)
			}
		}
	})
}
