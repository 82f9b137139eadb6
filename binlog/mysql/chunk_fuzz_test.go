package mysql

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// chunkBytes builds a chunk's plaintext: the header line, a format
// description event of fdeSize declared bytes (at most 100 written) and
// events of the given sizes.
func chunkBytes(fdeSize uint32, events ...int) []byte {
	var b bytes.Buffer
	b.WriteString(chunkMagic)
	b.WriteString(`{"start":"0-1-1","end":"0-1-2","first_gtid":"0-1-2","last_gtid":"0-1-2","first_time":1,"last_time":1,"txns":1,"checksum":"NONE"}` + "\n")
	b.Write(binary.LittleEndian.AppendUint32(nil, fdeSize))
	ev := func(size int) []byte {
		e := make([]byte, size)
		if size >= headerLen {
			binary.LittleEndian.PutUint32(e[9:], uint32(size))
		}
		return e
	}
	b.Write(ev(int(min(fdeSize, 100)))) // a length beyond the bytes that follow: the reader must not trust it
	for _, n := range events {
		b.Write(ev(n))
	}
	return b.Bytes()
}

// FuzzChunkReader: a chunk's header and events are read before its checksum
// can be checked, so any bytes must read without a panic or an allocation
// their lengths alone decide beyond the bounds (maxFDE, 1 GiB an event).
func FuzzChunkReader(f *testing.F) {
	f.Add(chunkBytes(100, 19, 50, 4000))
	f.Add(chunkBytes(100))
	f.Add(chunkBytes(1 << 31))
	f.Add(chunkBytes(100, 19)[:60])
	f.Add([]byte(chunkMagic + "{}\n\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cr, err := newChunkReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(cr.FDE) < headerLen || len(cr.FDE) > maxFDE {
			t.Fatalf("format description of %d bytes accepted", len(cr.FDE))
		}
		for {
			ev, err := cr.next()
			if errors.Is(err, io.EOF) || err != nil {
				return
			}
			if len(ev) < headerLen {
				t.Fatalf("event of %d bytes", len(ev))
			}
		}
	})
}

func TestChunkReaderBounds(t *testing.T) {
	if _, err := newChunkReader(bytes.NewReader(chunkBytes(1 << 31))); err == nil {
		t.Fatal("a 2 GiB format description was accepted")
	}
	cr, err := newChunkReader(bytes.NewReader(chunkBytes(100, 19, 50)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{19, 50} {
		if ev, err := cr.next(); err != nil || len(ev) != want {
			t.Fatalf("event: %d bytes, %v; want %d", len(ev), err, want)
		}
	}
	if _, err := cr.next(); err != io.EOF {
		t.Fatalf("after the last event: %v", err)
	}
}
