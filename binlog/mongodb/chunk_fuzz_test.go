package mongodb

import (
	"bytes"
	"io"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// A chunk is read from a store, which is untrusted: whatever its bytes, the
// reader returns valid oplog entries or an error, never panics, and never
// allocates more than one bounded entry at a time. Seeds: the valid chunk
// below, cut and emptied.
func FuzzChunkReader(f *testing.F) {
	var entries []Entry
	for i, d := range []bson.D{
		{{Key: "ts", Value: bson.Timestamp{T: 1700000000, I: 1}}, {Key: "op", Value: "i"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: bson.D{{Key: "_id", Value: 1}}},
			{Key: "wall", Value: bson.NewDateTimeFromTime(time.Unix(1700000000, 0))}},
		{{Key: "ts", Value: bson.Timestamp{T: 1700000000, I: 2}}, {Key: "op", Value: "d"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: bson.D{{Key: "_id", Value: 1}}},
			{Key: "_id", Value: bson.NewObjectID()}},
	} {
		raw, err := bson.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		e, err := ParseEntry(raw)
		if err != nil {
			f.Fatalf("seed %d: %v", i, err)
		}
		entries = append(entries, e)
	}
	valid := encodeChunk(ChunkHeader{Chain: 1, Start: 2, End: MakeTS(bson.Timestamp{T: 1700000000, I: 2}), Entries: 2, FirstMS: 1, LastMS: 2, SealMS: 3}, entries)
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add([]byte(chunkMagic + "{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cr, err := NewChunkReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for n := 0; ; n++ {
			e, err := cr.Next()
			if err == io.EOF {
				if n != cr.Header.Entries {
					t.Fatalf("EOF after %d entries, the header counts %d", n, cr.Header.Entries)
				}
				return
			}
			if err != nil {
				return
			}
			if e.Raw.Validate() != nil || e.Op == "" {
				t.Fatalf("entry %d accepted without a valid document and op", n)
			}
		}
	})
}
