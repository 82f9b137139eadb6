package mongodb

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drkit/drkit/storage"
)

// Catalog is a cluster's oplog in one region (see the package doc for its
// names).
type Catalog struct {
	Pipeline *storage.Pipeline
	Cluster  string
}

// ChunkRef is a stored chunk, as its name describes it.
type ChunkRef struct {
	Chain, Start, End TS
	LastMS            int64
	Sealed            time.Time
	// Fence is the lease generation of the drd that wrote the chunk
	// (drd.ha), 0 without a lease.
	Fence  uint64
	Object storage.Object
}

func (c *Catalog) prefix() string { return c.Cluster + "/oplog/" }

func tsName(t TS) string { return fmt.Sprintf("%020d", uint64(t)) }

// Put stores a chunk.
func (c *Catalog) Put(ctx context.Context, h ChunkHeader, entries []Entry) (ChunkRef, error) {
	plain := encodeChunk(h, entries)
	obj := c.Pipeline.Describe(plain)
	obj.Key = fmt.Sprintf("%s%s/%s-%s-%013d-%013d%s.%s.%s", c.prefix(), tsName(h.Chain), tsName(h.Start), tsName(h.End), h.LastMS, h.SealMS, storage.FenceSuffix(ctx), obj.SHA256, storage.CodecExt(obj))
	stored, err := c.Pipeline.PutBytes(ctx, obj, plain)
	if err != nil {
		return ChunkRef{}, err
	}
	return ChunkRef{Chain: h.Chain, Start: h.Start, End: h.End, LastMS: h.LastMS, Sealed: time.UnixMilli(h.SealMS).UTC(), Fence: storage.Fence(ctx), Object: stored}, nil
}

// List returns the region's chunks, by chain and then start, without the
// late chunks of a drd that had lost its lease.
func (c *Catalog) List(ctx context.Context) ([]ChunkRef, error) {
	kept, late, _, err := c.ListAll(ctx)
	for _, r := range late {
		slog.Warn("ignoring an oplog chunk a drd wrote after it lost its lease (another chunk from that point holds all it held)", "region", c.Pipeline.Region, "chunk", r.Object.Key, "fence", r.Fence)
	}
	return kept, err
}

// ListAll returns what List does, and apart the late chunks of a drd that
// had lost its lease, which prune deletes: the chain goes
// through another chunk at their position, which holds what they held
// (storage.LinkedFence). held are the other chunks out of the chain: prune
// deletes them only as old as it deletes kept ones.
func (c *Catalog) ListAll(ctx context.Context) (kept, late, held []ChunkRef, err error) {
	var out []ChunkRef
	for info, err := range c.Pipeline.Store.List(ctx, c.prefix()) {
		if err != nil {
			return nil, nil, nil, fmt.Errorf("region %s: list the MongoDB oplog: %w", c.Pipeline.Region, err)
		}
		if ref, ok := parseChunkKey(info, c.prefix()); ok {
			out = append(out, ref)
		}
	}
	slices.SortFunc(out, func(a, b ChunkRef) int {
		return cmp.Or(cmp.Compare(a.Chain, b.Chain), cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End))
	})
	// Two chunks from one point of a chain: a drd that lost its lease
	// finished an upload after the new holder wrote from there:
	// storage.LinkedFence settles which counts.
	kept, late, held, err = storage.LinkedFence(out, func(a, b ChunkRef) bool { return a.Chain == b.Chain && a.Start == b.Start },
		func(r ChunkRef) uint64 { return r.Fence },
		func(prev, next ChunkRef) (bool, error) {
			return prev.Chain == next.Chain && prev.End == next.Start, nil
		},
		func(a, b ChunkRef) (bool, error) { return a.Chain == b.Chain && a.End >= b.End, nil })
	return kept, late, held, err
}

// parseChunkKey reads a chunk's name; ok is false for anything else.
func parseChunkKey(info storage.ObjectInfo, prefix string) (ChunkRef, bool) {
	rest := strings.TrimPrefix(info.Key, prefix)
	chain, name, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(name, "/") {
		return ChunkRef{}, false
	}
	base, obj, ok := storage.ParseObjectName(info.Key, name, info.Size)
	if !ok {
		return ChunkRef{}, false
	}
	base, fence, ok := storage.CutFence(base)
	f := strings.Split(base, "-")
	if !ok || len(f) != 4 {
		return ChunkRef{}, false
	}
	var n [5]uint64
	for i, x := range append([]string{chain}, f...) {
		v, err := strconv.ParseUint(x, 10, 64)
		if err != nil || (i >= 3 && v > 1<<53) {
			return ChunkRef{}, false
		}
		n[i] = v
	}
	ref := ChunkRef{Chain: TS(n[0]), Start: TS(n[1]), End: TS(n[2]), LastMS: int64(n[3]), Sealed: time.UnixMilli(int64(n[4])).UTC(), Fence: fence, Object: obj}
	if ref.Start < ref.Chain || ref.End < ref.Start {
		return ChunkRef{}, false
	}
	return ref, true
}

// Open returns a reader of a chunk's entries; its checksum is checked when
// the last one is read (Close reports a mismatch too).
func (c *Catalog) Open(ctx context.Context, ref ChunkRef) (*ChunkReader, io.Closer, error) {
	rc, err := c.Pipeline.Open(ctx, ref.Object)
	if err != nil {
		return nil, nil, err
	}
	cr, err := NewChunkReader(rc)
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("region %s: %s: %w", c.Pipeline.Region, ref.Object.Key, err)
	}
	if h := cr.Header; h.Chain != ref.Chain || h.Start != ref.Start || h.End != ref.End {
		rc.Close()
		return nil, nil, fmt.Errorf("region %s: %s: its header says chain %s (%s, %s], not what its name says", c.Pipeline.Region, ref.Object.Key, h.Chain, h.Start, h.End)
	}
	return cr, rc, nil
}

// Each calls fn with every entry of ref, checksum checked at the end.
func (c *Catalog) Each(ctx context.Context, ref ChunkRef, fn func(Entry) error) error {
	cr, closer, err := c.Open(ctx, ref)
	if err != nil {
		return err
	}
	defer closer.Close()
	for {
		e, err := cr.Next()
		if err == io.EOF { // the pipeline checked the checksum at the end
			return nil
		}
		if err != nil {
			return fmt.Errorf("region %s: %s: %w", c.Pipeline.Region, ref.Object.Key, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// Chain is one run of chunks without a gap.
type Chain struct {
	Start, End TS
	// LastMS is the newest entry's wall time; Sealed when drd cut the
	// chain's last chunk.
	LastMS int64
	Sealed time.Time
	Chunks []ChunkRef
	// Breaks are the places inside the chain where a chunk does not start
	// where the one before ended (a chunk lost from the region).
	Breaks []string
}

// Chains groups refs (as List returns them) into chains.
func Chains(refs []ChunkRef) []Chain {
	var out []Chain
	for _, r := range refs {
		if len(out) == 0 || out[len(out)-1].Start != r.Chain {
			out = append(out, Chain{Start: r.Chain, End: r.Chain})
		}
		ch := &out[len(out)-1]
		if r.Start != ch.End {
			ch.Breaks = append(ch.Breaks, fmt.Sprintf("oplog (%s, %s] is missing before %s", ch.End, r.Start, r.Object.Key))
		}
		ch.Chunks = append(ch.Chunks, r)
		ch.End = max(ch.End, r.End)
		ch.LastMS = max(ch.LastMS, r.LastMS)
		if r.Sealed.After(ch.Sealed) {
			ch.Sealed = r.Sealed
		}
	}
	return out
}
