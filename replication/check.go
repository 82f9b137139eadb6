package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Table is a table to compare, with its primary-key columns in key order
// (none: the table is compared as one chunk).
type Table struct {
	Schema, Name string
	Key          []string
	// KeyTypes are the key columns' SQL types, for engines that cast bounds.
	KeyTypes []string
	Columns  []string
}

// String is schema.name.
func (t Table) String() string { return t.Schema + "." + t.Name }

// Key is a primary-key value, column by column, as text.
type Key []string

// Sum is a chunk's row count and content hash.
type Sum struct {
	Rows int64
	Hash string
}

// Side sums a key range [lo, hi) of a table on one server; a nil bound is
// open.
type Side interface {
	Sum(ctx context.Context, t Table, lo, hi Key) (Sum, error)
}

// PrimarySide is the primary's side: it also lists the tables, cuts them
// into chunks and says where its log is.
type PrimarySide interface {
	Side
	Tables(ctx context.Context) ([]Table, error)
	// Next returns the key n rows past lo (the first key of the next chunk),
	// nil when fewer rows follow.
	Next(ctx context.Context, t Table, lo Key, n int) (Key, error)
	// Position is the primary's log position now, covering every commit
	// visible to a Sum that finished before.
	Position(ctx context.Context) (string, error)
}

// ReplicaSide is the replica's side: it can be waited for.
type ReplicaSide interface {
	Side
	// WaitFor returns once the replica has replayed pos, or an error after timeout.
	WaitFor(ctx context.Context, pos string, timeout time.Duration) error
}

// Checker compares every table of a primary with one replica, chunk by chunk.
type Checker struct {
	Primary PrimarySide
	Replica ReplicaSide
	// ChunkRows is the rows per chunk (default 1000).
	ChunkRows int
	// Retries is how often a chunk that changed during its comparison is
	// compared again (default 3).
	Retries int
	// Wait bounds each wait for the replica (default 30s).
	Wait time.Duration
	// Skip lists tables (schema.name) not to compare, such as the heartbeat.
	Skip []string
	// Only, if set, lists the only tables (schema.name) to compare.
	Only []string
	Log  *slog.Logger
}

// Report is the result of one check.
type Report struct {
	Replica  string    `json:"replica"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Tables   int       `json:"tables"`
	Chunks   int       `json:"chunks"`
	Rows     int64     `json:"rows"`
	// Diffs are the chunks whose content differs: drift.
	Diffs []Diff `json:"diffs,omitempty"`
	// Unstable are chunks that changed on the primary at every attempt and
	// could not be compared; they are not drift.
	Unstable []Diff `json:"unstable,omitempty"`
}

// InSync is whether no chunk differed.
func (r Report) InSync() bool { return len(r.Diffs) == 0 }

// DriftTables returns the tables with drift, sorted.
func (r Report) DriftTables() []string {
	var out []string
	for _, d := range r.Diffs {
		if !slices.Contains(out, d.Table) {
			out = append(out, d.Table)
		}
	}
	slices.Sort(out)
	return out
}

// Diff is one key range that differs.
type Diff struct {
	Table string `json:"table"`
	// From and To bound the key range [from, to); "" is open.
	From        string `json:"from,omitempty"`
	To          string `json:"to,omitempty"`
	PrimaryRows int64  `json:"primary_rows"`
	ReplicaRows int64  `json:"replica_rows"`
}

// Range renders the key range for people.
func (d Diff) Range() string {
	from, to := d.From, d.To
	if from == "" {
		from = "-inf"
	}
	if to == "" {
		to = "+inf"
	}
	return "[" + from + ", " + to + ")"
}

func (k Key) String() string {
	if k == nil {
		return ""
	}
	if len(k) == 1 {
		return k[0]
	}
	return "(" + strings.Join(k, ", ") + ")"
}

// Run compares every table and returns what differs. An error means the
// check could not finish (a server unreachable, the replica not catching up).
func (c *Checker) Run(ctx context.Context) (Report, error) {
	c.defaults()
	rep := Report{Started: time.Now().UTC()}
	tables, err := c.Primary.Tables(ctx)
	if err != nil {
		return rep, fmt.Errorf("primary: list tables: %w", err)
	}
	for _, t := range tables {
		if slices.Contains(c.Skip, t.String()) || (len(c.Only) > 0 && !slices.Contains(c.Only, t.String())) {
			continue
		}
		if err := c.table(ctx, t, &rep); err != nil {
			return rep, fmt.Errorf("table %s: %w", t, err)
		}
		rep.Tables++
	}
	rep.Finished = time.Now().UTC()
	return rep, nil
}

func (c *Checker) defaults() {
	if c.ChunkRows <= 0 {
		c.ChunkRows = 1000
	}
	if c.Retries <= 0 {
		c.Retries = 3
	}
	if c.Wait <= 0 {
		c.Wait = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

func (c *Checker) table(ctx context.Context, t Table, rep *Report) error {
	var lo Key
	for {
		var hi Key
		if len(t.Key) > 0 {
			var err error
			if hi, err = c.Primary.Next(ctx, t, lo, c.ChunkRows); err != nil {
				return fmt.Errorf("primary: cut chunk after %s: %w", lo, err)
			}
		}
		if err := c.chunk(ctx, t, lo, hi, rep); err != nil {
			return err
		}
		if hi == nil {
			return nil
		}
		lo = hi
	}
}

// chunk compares one key range; see the package doc for the protocol.
func (c *Checker) chunk(ctx context.Context, t Table, lo, hi Key, rep *Report) error {
	rep.Chunks++
	diff := Diff{Table: t.String(), From: lo.String(), To: hi.String()}
	for range c.Retries + 1 {
		ps, rs, err := c.compareOnce(ctx, t, lo, hi)
		if err != nil {
			return err
		}
		if ps == rs {
			rep.Rows += ps.Rows
			return nil
		}
		again, err := c.Primary.Sum(ctx, t, lo, hi)
		if err != nil {
			return fmt.Errorf("primary: sum %s: %w", diff.Range(), err)
		}
		if again == ps {
			c.Log.Warn("replica differs from primary", "table", t.String(), "range", diff.Range(),
				"primary_rows", ps.Rows, "replica_rows", rs.Rows)
			diff.PrimaryRows, diff.ReplicaRows = ps.Rows, rs.Rows
			rep.Rows += ps.Rows
			rep.Diffs = append(rep.Diffs, diff)
			return nil
		}
		// The primary changed the range meanwhile: compare again at a newer position.
	}
	rep.Unstable = append(rep.Unstable, diff)
	return nil
}

func (c *Checker) compareOnce(ctx context.Context, t Table, lo, hi Key) (ps, rs Sum, err error) {
	rangeOf := Diff{From: lo.String(), To: hi.String()}.Range()
	if ps, err = c.Primary.Sum(ctx, t, lo, hi); err != nil {
		return ps, rs, fmt.Errorf("primary: sum %s: %w", rangeOf, err)
	}
	pos, err := c.Primary.Position(ctx)
	if err != nil {
		return ps, rs, fmt.Errorf("primary: read log position: %w", err)
	}
	if err := c.Replica.WaitFor(ctx, pos, c.Wait); err != nil {
		return ps, rs, fmt.Errorf("replica: wait until it has replayed %s: %w", pos, err)
	}
	if rs, err = c.Replica.Sum(ctx, t, lo, hi); err != nil {
		return ps, rs, fmt.Errorf("replica: sum %s: %w", rangeOf, err)
	}
	return ps, rs, nil
}

// ErrNotCaughtUp is returned (wrapped) by WaitFor when the replica did not
// reach the position in time.
var ErrNotCaughtUp = errors.New("the replica did not reach the primary's position in time (is it replicating? see drctl status)")
