package drill

import (
	"context"
	"errors"
	"io"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drkit/drkit/storage"
)

// errReadOnly is what a drill's store answers to a write.
var errReadOnly = errors.New("a drill only reads the region's store")

// Meter counts what a drill read from a store: the bytes, and the time
// during which at least one read was under way (concurrent reads count
// once), which the drill reports as its "fetch log" phase.
type Meter struct {
	bytes atomic.Int64

	mu       sync.Mutex
	inFlight int
	since    time.Time
	busy     time.Duration
}

// Bytes is the number of bytes read so far.
func (m *Meter) Bytes() int64 { return m.bytes.Load() }

// Busy is the time reads were under way so far.
func (m *Meter) Busy() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inFlight > 0 {
		return m.busy + time.Since(m.since)
	}
	return m.busy
}

func (m *Meter) begin() {
	m.mu.Lock()
	if m.inFlight == 0 {
		m.since = time.Now()
	}
	m.inFlight++
	m.mu.Unlock()
}

func (m *Meter) end() {
	m.mu.Lock()
	if m.inFlight--; m.inFlight == 0 {
		m.busy += time.Since(m.since)
	}
	m.mu.Unlock()
}

// readOnly is a region's store that meters reads and refuses writes.
type readOnly struct {
	storage.Store
	m *Meter
}

func (s readOnly) Put(context.Context, string, io.Reader) error { return errReadOnly }
func (s readOnly) Delete(context.Context, ...string) error      { return errReadOnly }

func (s readOnly) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	s.m.begin()
	rc, err := s.Store.Get(ctx, key, offset, length)
	s.m.end()
	if err != nil {
		return nil, err
	}
	return &metered{ReadCloser: rc, m: s.m}, nil
}

func (s readOnly) List(ctx context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	return s.Store.List(ctx, prefix)
}

type metered struct {
	io.ReadCloser
	m *Meter
}

func (c *metered) Read(p []byte) (int, error) {
	c.m.begin()
	n, err := c.ReadCloser.Read(p)
	c.m.end()
	c.m.bytes.Add(int64(n))
	return n, err
}

// ReadOnly returns r with its store (and its pipeline's) refusing writes and
// metered into m: a drill, and the log fetches of its sandboxed server,
// only read the region.
func ReadOnly(r *storage.Region, m *Meter) *storage.Region {
	ro := readOnly{Store: r.Store, m: m}
	out := &storage.Region{Name: r.Name, Store: ro}
	if r.Pipeline != nil {
		p := *r.Pipeline
		p.Store = ro
		out.Pipeline = &p
	}
	return out
}
