package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	driver "github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"

	binlog "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// BackupOptions say what to back up and where.
type BackupOptions struct {
	Cluster string
	DSN     string
	Regions []*storage.Region
	// Workers read tables in parallel (default: 2 per core, at most 8).
	Workers int
	// PartSize is the plaintext size of one data object (default 16 MiB).
	PartSize int
	// RangeRows splits tables with an integer primary key into ranges of about
	// this many rows (default 200 000).
	RangeRows int64
	Log       *slog.Logger
	// Progress, if set, is told the rows read so far.
	Progress func(rows int64)
}

func (o *BackupOptions) defaults() {
	if o.Workers <= 0 {
		o.Workers = min(2*runtime.NumCPU(), 8)
	}
	if o.PartSize <= 0 {
		o.PartSize = 16 << 20
	}
	if o.RangeRows <= 0 {
		o.RangeRows = 200_000
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// table is one base table to copy.
type table struct {
	idx      int
	db, name string
	cols     []Column
	exprs    []string // SELECT list, in cols order
	pk       string   // single integer primary key column, "" if none
	estRows  int64
	parts    atomic.Int32
	rows     atomic.Int64
	text     atomic.Int64 // LOAD DATA bytes written, before compression
	mu       sync.Mutex
	objects  [][]storage.Object // per region
	ranges   []keyRange         // none: the table is read whole
}

type keyRange struct{ lo, hi int64 } // [lo, hi); hi == 0 on the last: open

// Backup takes a consistent snapshot of the server into every region and
// returns the first region's manifest.
func Backup(ctx context.Context, o BackupOptions) (Manifest, error) {
	o.defaults()
	if len(o.Regions) == 0 {
		return Manifest{}, errors.New("backup: no region to write to")
	}
	cfg, err := driver.ParseDSN(o.DSN)
	if err != nil {
		return Manifest{}, fmt.Errorf("cluster %s: dsn: %w", o.Cluster, err)
	}
	// Values are copied as the server prints them: with parseTime a DATETIME
	// came back as a time.Time, and a zero date as 0001-01-01.
	cfg.ParseTime = false
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return Manifest{}, fmt.Errorf("cluster %s: dsn: %w", o.Cluster, err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(o.Workers + 2)
	started := time.Now().UTC()
	snap, err := openSnapshot(ctx, db, cfg, o.Workers, o.RangeRows)
	if err != nil {
		return Manifest{}, fmt.Errorf("cluster %s: %w", o.Cluster, err)
	}
	defer snap.close()
	id, err := snapshots.NewBackupID(ctx, o.Regions, o.Cluster, started)
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{FormatVersion: FormatVersion, Engine: "mysql", Flavor: "mariadb", Cluster: o.Cluster, ID: id,
		ServerVersion: snap.version, GTIDPos: snap.pos.String(), SnapshotTime: snap.at, StartTime: started, Fence: storage.Fence(ctx)}
	info := binlog.ClusterInfo{Engine: "mysql", Flavor: "mariadb", ServerVersion: snap.version}
	for _, r := range o.Regions {
		if err := (&binlog.Catalog{Pipeline: r.Pipeline, Cluster: o.Cluster}).EnsureInfo(ctx, info); err != nil {
			return m, err
		}
	}
	o.Log.Info("snapshot taken", "cluster", o.Cluster, "gtid_pos", m.GTIDPos, "tables", len(snap.tables), "lock_held", snap.lockHeld)
	if err := copyTables(ctx, o, snap, id); err != nil {
		return m, err
	}
	schemaJSON, err := json.MarshalIndent(snap.schema, "", "  ")
	if err != nil {
		return m, err
	}
	var first Manifest
	for i, r := range o.Regions {
		rm := m
		rm.PartCompression = partCompression(r.Pipeline)
		rm.Schema, err = r.Pipeline.Put(ctx, baseKey(o.Cluster, id, "schema.json"), bytes.NewReader(schemaJSON))
		if err != nil {
			return m, fmt.Errorf("backup %s: schema: %w", id, err)
		}
		rm.PlainSize, rm.StoredSize = rm.Schema.PlainSize, rm.Schema.Size
		for _, t := range snap.tables {
			tp := TableParts{DB: t.db, Name: t.name, Columns: t.cols, Rows: t.rows.Load(), PlainSize: t.text.Load(), Parts: t.objects[i]}
			rm.PlainSize += tp.PlainSize
			for _, p := range tp.Parts {
				rm.StoredSize += p.Size
			}
			rm.Rows += tp.Rows
			rm.Tables = append(rm.Tables, tp)
		}
		rm.StopTime = time.Now().UTC()
		if err := writeManifest(ctx, r.Store, rm); err != nil {
			return m, fmt.Errorf("backup %s: region %s: manifest: %w", id, r.Name, err)
		}
		if i == 0 {
			first = rm
		}
	}
	o.Log.Info("backup complete", "cluster", o.Cluster, "id", id, "rows", first.Rows, "bytes", first.PlainSize, "stored", first.StoredSize, "took", time.Since(started).Round(time.Millisecond))
	return first, nil
}

// copyTables reads every table range in the workers' snapshots and writes the
// parts to every region.
func copyTables(ctx context.Context, o BackupOptions, snap *snapshot, id string) error {
	for _, t := range snap.tables {
		t.objects = make([][]storage.Object, len(o.Regions))
	}
	type job struct {
		t *table
		r keyRange
	}
	jobs := make(chan job)
	var rows atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		for _, t := range snap.tables {
			rs := t.ranges
			if len(rs) == 0 {
				rs = []keyRange{{}}
			}
			for _, r := range rs {
				select {
				case jobs <- job{t, r}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	})
	for _, w := range snap.workers {
		g.Go(func() error {
			for j := range jobs {
				if err := copyRange(ctx, o, w, id, j.t, j.r, &rows); err != nil {
					return fmt.Errorf("table %s.%s: %w", j.t.db, j.t.name, err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// copyRange streams one key range of a table into parts.
func copyRange(ctx context.Context, o BackupOptions, w *worker, id string, t *table, r keyRange, total *atomic.Int64) error {
	q := fmt.Sprintf("SELECT %s FROM %s.%s", strings.Join(t.exprs, ", "), quote(t.db), quote(t.name))
	if len(t.ranges) > 0 {
		q += fmt.Sprintf(" WHERE %s >= %d", quote(t.pk), r.lo)
		if r.hi != 0 {
			q += fmt.Sprintf(" AND %s < %d", quote(t.pk), r.hi)
		}
	}
	buf := make([]byte, 0, o.PartSize+64<<10)
	var n int64
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := putPart(ctx, o, id, t, buf)
		buf = buf[:0]
		return err
	}
	err := w.eachRow(ctx, q, func(row []gomysql.FieldValue, fields []*gomysql.Field) error {
		var err error
		if buf, err = appendRow(buf, row, fields); err != nil {
			return err
		}
		n++
		if n%10000 == 0 && o.Progress != nil {
			o.Progress(total.Add(10000))
		}
		if len(buf) >= o.PartSize {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.rows.Add(n)
	if o.Progress != nil {
		o.Progress(total.Add(n % 10000))
	}
	return flush()
}

// partCompression is what a region's parts hold: a zstd frame drkit made,
// or the text where the region does not compress.
func partCompression(p *storage.Pipeline) string {
	if p.Level > 0 {
		return "zstd"
	}
	return "none"
}

// putPart writes one part to every region in parallel. The part is in
// memory: it is compressed once per zstd level, not once per region, into a
// frame whose own checksum proves the text on decode, and the SHA-256 is
// taken of the frame (a fifth of the text's size). Each region stores the
// frame as its object's plaintext, encrypted for its own recipients.
func putPart(ctx context.Context, o BackupOptions, id string, t *table, data []byte) error {
	key := baseKey(o.Cluster, id, fmt.Sprintf("t%05d-%05d", t.idx, t.parts.Add(1)))
	plain := &storage.Plain{Data: data}
	objs := make([]storage.Object, len(o.Regions))
	g, ctx := errgroup.WithContext(ctx)
	for i, r := range o.Regions {
		g.Go(func() error {
			frame, sum, err := plain.Frame(r.Pipeline.Level)
			if err != nil {
				return fmt.Errorf("part %s: %w", key, err)
			}
			obj := r.Pipeline.Described(sum, int64(len(frame)))
			obj.Key, obj.Compression = key, "none"
			objs[i], err = r.Pipeline.PutPlain(ctx, obj, &storage.Plain{Data: frame})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	t.text.Add(int64(len(data)))
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range objs {
		t.objects[i] = append(t.objects[i], objs[i])
	}
	return nil
}

func quote(ident string) string { return "`" + strings.ReplaceAll(ident, "`", "``") + "`" }
