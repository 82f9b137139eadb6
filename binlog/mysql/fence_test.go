package mysql

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/drkit/drkit/storage"
)

func TestParseChunkBase(t *testing.T) {
	for _, tc := range []struct {
		base  string
		seq   uint64
		last  int64
		fence uint64
		ok    bool
	}{
		{"000000000007-1733500000", 7, 1733500000, 0, true},
		{"000000000007-1733500000-f3", 7, 1733500000, 3, true},
		{"000000000007-1733500000-f0", 0, 0, 0, false}, // fences start at 1
		{"000000000007-1733500000-fx", 0, 0, 0, false},
		{"000000000007", 0, 0, 0, false},
		{"x-1", 0, 0, 0, false},
	} {
		seq, last, fence, ok := parseChunkBase(tc.base)
		if ok != tc.ok || (ok && (seq != tc.seq || last != tc.last || fence != tc.fence)) {
			t.Errorf("parseChunkBase(%q) = %d, %d, %d, %v", tc.base, seq, last, fence, ok)
		}
	}
}

// TestFenceLinked: of chunks numbered alike that both link, the newest
// lease holder's counts and the other, which it covers, is late; a lone
// chunk counts whatever its fence.
func TestFenceLinked(t *testing.T) {
	c := fileCatalog(t, "eu")
	ctx := context.Background()
	put(t, c, 1, 1, "0-1-1", "0-1-10")
	put(t, c, 2, 1, "0-1-10", "0-1-20")
	put(t, c, 3, 1, "0-1-20", "0-1-30")
	put(t, c, 3, 2, "0-1-20", "0-1-32") // the new holder's 3, then the old one's late upload of it
	put(t, c, 4, 2, "0-1-32", "0-1-40")
	put(t, c, 5, 0, "0-1-40", "0-1-50") // ha turned off: no fence, still counts
	kept, late, _, err := c.ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqFences(kept); got != "1f1 2f1 3f2 4f2 5f0" {
		t.Errorf("kept %s", got)
	}
	if got := seqFences(late); got != "3f1" {
		t.Errorf("late %s, want the fence-1 chunk 3", got)
	}
}

// TestFenceLinkedFollowsTheNewestHoldersChain: holder 1 paused uploading
// chunk 2, holder 2 took over from chunk 1's end and paused uploading its own
// chunk 2; holder 1's landed, holder 3 listed it and went on from its end;
// holder 2's landed last. The chain is holder 3's, through holder 1's chunk 2:
// keeping the higher fence broke it for good (a gap before chunk 3, and
// prune deleting the only copy of 0-1-22..0-1-25).
func TestFenceLinkedFollowsTheNewestHoldersChain(t *testing.T) {
	c := fileCatalog(t, "eu")
	ctx := context.Background()
	put(t, c, 1, 1, "0-1-1", "0-1-10")
	put(t, c, 2, 1, "0-1-10", "0-1-25")
	put(t, c, 3, 3, "0-1-25", "0-1-40")
	put(t, c, 2, 2, "0-1-10", "0-1-22")
	kept, late, _, err := c.ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqFences(kept); got != "1f1 2f1 3f3" {
		t.Fatalf("kept %s, want 1f1 2f1 3f3", got)
	}
	if got := seqFences(late); got != "2f2" {
		t.Fatalf("late %s, want 2f2", got)
	}
	// Before holder 3 wrote: holder 2's chunk counts for now, and holder
	// 1's is neither kept nor late (prune leaves it).
	c2 := fileCatalog(t, "us")
	put(t, c2, 1, 1, "0-1-1", "0-1-10")
	put(t, c2, 2, 1, "0-1-10", "0-1-25")
	put(t, c2, 2, 2, "0-1-10", "0-1-22")
	kept, late, _, err = c2.ListAll(ctx)
	if err != nil || seqFences(kept) != "1f1 2f2" || len(late) != 0 {
		t.Fatalf("newest undecided: kept %s, late %s, %v", seqFences(kept), seqFences(late), err)
	}
}

// put stores a chunk numbered seq under fence, from start to end.
func put(t *testing.T, c *Catalog, seq, fence uint64, start, end string) {
	t.Helper()
	hj, _ := json.Marshal(ChunkHeader{Start: start, End: end, LastTime: 1, Txns: 1, Checksum: "NONE"})
	var b bytes.Buffer
	b.WriteString(chunkMagic)
	b.Write(hj)
	b.WriteByte('\n')
	fde := make([]byte, 100)
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(fde))))
	b.Write(fde)
	sum := sha256.Sum256(b.Bytes())
	e := &encodedChunk{plain: &storage.Plain{Data: b.Bytes()}, sum: hex.EncodeToString(sum[:])}
	ctx := context.Background()
	if fence > 0 {
		ctx = storage.WithFence(ctx, fence)
	}
	if err := c.Put(ctx, seq, e); err != nil {
		t.Fatal(err)
	}
}

func seqFences(refs []ChunkRef) string {
	var s []string
	for _, r := range refs {
		s = append(s, fmt.Sprintf("%df%d", r.Seq, r.Fence))
	}
	return strings.Join(s, " ")
}

func FuzzChunkBase(f *testing.F) {
	for _, s := range []string{"000000000007-1733500000", "000000000007-1733500000-f3", "1-2-f", "-", "1--f1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		seq, last, fence, ok := parseChunkBase(base)
		if !ok {
			return
		}
		// What parses names the same chunk when written back.
		again := fmt.Sprintf("%012d-%010d", seq, last)
		if fence > 0 {
			again += fmt.Sprintf("-f%d", fence)
		}
		s2, l2, f2, ok2 := parseChunkBase(again)
		if !ok2 || s2 != seq || l2 != last || f2 != fence {
			t.Fatalf("%q parsed as %d %d %d, which writes back as %q", base, seq, last, fence, again)
		}
	})
}
