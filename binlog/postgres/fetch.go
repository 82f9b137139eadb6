package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/drkit/drkit/storage"
)

// prefetchDir is where wal-fetch keeps segments fetched ahead, beside pg_wal's
// target file: restore_command runs once per segment, so fetching the next few
// in parallel on a miss turns a replay bound by one GET at a time into one bound
// by the store's bandwidth.
const prefetchDir = ".drkit-prefetch"

// Fetch writes the WAL file name (a segment or a timeline history file) to dest,
// as PostgreSQL's restore_command. A segment stored only as partial chunks (the
// newest, when the primary died) is assembled and padded to full size. It
// returns an error wrapping storage.ErrNotFound when the region has no such
// file: the normal end of recovery.
//
// On a miss it also fetches the next prefetch segments into the cache beside
// dest. One listing serves the segment and its window: a store lists by
// prefix (one LIST on S3 instead of one per segment), and a file:// folder,
// which has no lookup by prefix, is read once per window, not per segment.
func (c *Catalog) Fetch(ctx context.Context, name, dest string, prefetch int) error {
	cache := filepath.Join(filepath.Dir(dest), prefetchDir)
	if err := os.Rename(filepath.Join(cache, name), dest); err == nil {
		return nil
	}
	info, err := c.ReadInfo(ctx)
	if err != nil {
		return fmt.Errorf("region %s: read %s/cluster.json: %w", c.Pipeline.Region, c.Cluster, err)
	}
	segSize := info.WALSegmentSize
	var ahead []string
	if IsSegmentName(name) && prefetch > 0 {
		if seg, err := ParseSegmentName(name, segSize); err == nil {
			for i := 1; i <= prefetch; i++ {
				ahead = append(ahead, Segment{TLI: seg.TLI, No: seg.No + uint64(i)}.Name(segSize))
			}
		}
	}
	prefix := name + "."
	if len(ahead) > 0 {
		prefix = commonPrefix(name, ahead[len(ahead)-1])
	}
	listed, err := c.listWAL(ctx, prefix, segSize)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var panicked atomic.Value // a prefetch's panic, as an error
	if len(ahead) > 0 {
		_ = os.MkdirAll(cache, 0o700)
		c.cleanCache(cache, name)
	}
	for _, next := range ahead {
		// Only whole segments are fetched ahead (a partial one may still
		// grow), and only those the region holds.
		f := listed[next]
		if f == nil || f.whole == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(cache, next)); err == nil {
			continue
		}
		wg.Go(func() {
			// A panic here would kill the process with exit 2, which
			// PostgreSQL reads as "no more WAL": it is returned instead,
			// and recovery aborts.
			defer func() {
				if p := recover(); p != nil {
					panicked.CompareAndSwap(nil, fmt.Errorf("prefetch of %s: internal error: %v", next, p))
				}
			}()
			_ = c.writeObject(ctx, f.whole.Object, filepath.Join(cache, next))
		})
	}
	err = c.fetchFrom(ctx, name, listed[name], dest, segSize)
	if err != nil && !errors.Is(err, ErrWALNotFound) && errors.Is(err, storage.ErrNotFound) {
		err = c.fetchOne(ctx, name, dest, segSize)
	}
	wg.Wait()
	if p, ok := panicked.Load().(error); ok {
		return p
	}
	return err
}

// commonPrefix is the longest common prefix of two WAL file names.
func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

// cleanCache removes prefetched segments older than name (a restarted recovery).
func (c *Catalog) cleanCache(cache, name string) {
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if e.Name() < name || strings.HasPrefix(e.Name(), ".tmp") {
			os.Remove(filepath.Join(cache, e.Name()))
		}
	}
}

// walFile is what a region holds of one WAL file: the whole object and/or
// the partial chunks of a segment still open when they were shipped.
type walFile struct {
	whole  *WALObject
	chunks []WALObject
}

// listWAL lists the WAL files whose names start with prefix, by name.
func (c *Catalog) listWAL(ctx context.Context, prefix string, segSize uint64) (map[string]*walFile, error) {
	files := map[string]*walFile{}
	for info, err := range c.store().List(ctx, c.key("wal", prefix)) {
		if err != nil {
			return nil, fmt.Errorf("region %s: look up WAL %s*: %w", c.Pipeline.Region, prefix, err)
		}
		w, ok := parseWALKey(info, strings.TrimPrefix(info.Key, c.key("wal")+"/"), segSize)
		if !ok {
			continue
		}
		f := files[w.Name]
		if f == nil {
			f = &walFile{}
			files[w.Name] = f
		}
		if w.Partial {
			f.chunks = append(f.chunks, w)
		} else {
			f.whole = &w
		}
	}
	return files, nil
}

// fetchOne looks name up and writes it to dest through a temporary file. A
// listed object that is gone when read means the shipper completed the
// segment meanwhile (it stores the whole segment, then deletes the chunks):
// the lookup is repeated, and finds the whole segment.
func (c *Catalog) fetchOne(ctx context.Context, name, dest string, segSize uint64) error {
	const attempts = 3
	var err error
	for range attempts {
		var listed map[string]*walFile
		if listed, err = c.listWAL(ctx, name+".", segSize); err != nil {
			return err
		}
		err = c.fetchFrom(ctx, name, listed[name], dest, segSize)
		if err == nil || errors.Is(err, ErrWALNotFound) || !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return err
}

// fetchFrom writes what f holds of name to dest: the whole file, else the
// segment assembled from its partial chunks.
func (c *Catalog) fetchFrom(ctx context.Context, name string, f *walFile, dest string, segSize uint64) error {
	switch {
	case f != nil && f.whole != nil:
		return c.writeObject(ctx, f.whole.Object, dest)
	case f != nil && len(f.chunks) > 0:
		return c.writePartial(ctx, name, f.chunks, segSize, dest)
	}
	return fmt.Errorf("region %s: WAL file %s: %w", c.Pipeline.Region, name, ErrWALNotFound)
}

// ReadSegment returns complete segment name from the region: its whole
// object (its checksum checked) or, before the shipper has compacted it, its
// partial chunks if they cover it. An error wraps ErrWALNotFound if the
// region does not hold it all.
func (c *Catalog) ReadSegment(ctx context.Context, name string, segSize uint64) ([]byte, error) {
	listed, err := c.listWAL(ctx, name+".", segSize)
	if err != nil {
		return nil, err
	}
	f := listed[name]
	switch {
	case f != nil && f.whole != nil:
		return c.readWhole(ctx, name, f.whole.Object, segSize)
	case f != nil && len(f.chunks) > 0:
		buf, end, err := c.assemble(ctx, name, f.chunks, segSize)
		if err == nil && end < segSize {
			err = fmt.Errorf("region %s: WAL file %s: its chunks end at byte %d of %d: %w", c.Pipeline.Region, name, end, segSize, ErrWALNotFound)
		}
		return buf, err
	}
	return nil, fmt.Errorf("region %s: WAL file %s: %w", c.Pipeline.Region, name, ErrWALNotFound)
}

func (c *Catalog) readWhole(ctx context.Context, name string, obj storage.Object, segSize uint64) ([]byte, error) {
	rc, err := c.Pipeline.Open(ctx, obj)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := bytes.NewBuffer(make([]byte, 0, segSize))
	if _, err := b.ReadFrom(io.LimitReader(rc, int64(segSize)+1)); err != nil {
		return nil, fmt.Errorf("region %s: read %s: %w", c.Pipeline.Region, name, err)
	}
	if uint64(b.Len()) != segSize {
		return nil, fmt.Errorf("region %s: segment %s holds %d bytes, not %d", c.Pipeline.Region, name, b.Len(), segSize)
	}
	return b.Bytes(), nil
}

func (c *Catalog) writeObject(ctx context.Context, obj storage.Object, dest string) error {
	rc, err := c.Pipeline.Open(ctx, obj)
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeFileAtomic(dest, rc)
}

// writePartial writes the segment assembled from its chunks, padded with
// zeros: recovery stops at the first invalid record.
func (c *Catalog) writePartial(ctx context.Context, name string, chunks []WALObject, segSize uint64, dest string) error {
	buf, _, err := c.assemble(ctx, name, chunks, segSize)
	if err != nil {
		return err
	}
	return writeFileAtomic(dest, bytesReader(buf))
}

// assemble reads a segment's chunks (sorted by offset; overlaps are
// identical WAL) into a segment-sized buffer, up to the first gap, and
// returns where what it read ends.
func (c *Catalog) assemble(ctx context.Context, name string, chunks []WALObject, segSize uint64) (buf []byte, end uint64, err error) {
	buf = make([]byte, segSize)
	for _, ch := range chunks {
		if ch.From > end {
			break // a gap: what follows cannot be replayed
		}
		rc, err := c.Pipeline.Open(ctx, ch.Object)
		if err != nil {
			return nil, 0, err
		}
		_, err = io.ReadFull(rc, buf[ch.From:ch.To])
		if err == nil {
			_, err = io.Copy(io.Discard, rc) // reach EOF so the checksum is checked
		}
		rc.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("region %s: partial WAL %s [%d,%d): %w", c.Pipeline.Region, name, ch.From, ch.To, err)
		}
		end = max(end, ch.To)
	}
	return buf, end, nil
}

func writeFileAtomic(dest string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".tmp-drkit-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// ErrWALNotFound is the one Fetch error that means "the region has no such
// WAL file": the normal end of recovery. Every other error, a missing
// cluster.json or object included, must abort recovery instead.
var ErrWALNotFound = fmt.Errorf("no such WAL file: %w", storage.ErrNotFound)

// Push stores the WAL file at path (archive_command): a segment, a timeline
// history file, or a "<segment>.partial" left by a promotion. Other files
// (.backup history) are accepted and ignored.
func (c *Catalog) Push(ctx context.Context, path string) error {
	name := filepath.Base(path)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	switch {
	case IsSegmentName(name):
		return c.PutSegment(ctx, name, data)
	case IsHistoryName(name):
		return c.PutHistory(ctx, name, data)
	case strings.HasSuffix(name, ".partial") && IsSegmentName(strings.TrimSuffix(name, ".partial")):
		return c.PutPartial(ctx, strings.TrimSuffix(name, ".partial"), 0, uint64(len(data)), data)
	}
	return nil
}
