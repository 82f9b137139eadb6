package drill

import (
	"context"
	"errors"
	"io"
	"iter"
	"sync/atomic"

	"github.com/drkit/drkit/storage"
)

// errReadOnly is what a drill's store answers to a write.
var errReadOnly = errors.New("a drill only reads the region's store")

// readOnly is a region's store that counts the bytes read and refuses
// writes.
type readOnly struct {
	storage.Store
	read *atomic.Int64
}

func (s readOnly) Put(context.Context, string, io.Reader) error { return errReadOnly }
func (s readOnly) Delete(context.Context, ...string) error      { return errReadOnly }

func (s readOnly) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := s.Store.Get(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	return &counted{ReadCloser: rc, n: s.read}, nil
}

func (s readOnly) List(ctx context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	return s.Store.List(ctx, prefix)
}

type counted struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// readOnlyRegion returns r with its store (and its pipeline's) read-only
// and counted into read.
func readOnlyRegion(r *storage.Region, read *atomic.Int64) *storage.Region {
	ro := readOnly{Store: r.Store, read: read}
	out := &storage.Region{Name: r.Name, Store: ro}
	if r.Pipeline != nil {
		p := *r.Pipeline
		p.Store = ro
		out.Pipeline = &p
	}
	return out
}
