package mysql

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	sqldrv "database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"

	binlog "github.com/drkit/drkit/binlog/mysql"
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
	snap, err := openSnapshot(ctx, db, o.Workers, o.RangeRows)
	if err != nil {
		return Manifest{}, fmt.Errorf("cluster %s: %w", o.Cluster, err)
	}
	defer snap.close()
	id := started.Format("20060102T150405Z")
	m := Manifest{FormatVersion: FormatVersion, Engine: "mysql", Flavor: "mariadb", Cluster: o.Cluster, ID: id,
		ServerVersion: snap.version, GTIDPos: snap.pos.String(), SnapshotTime: snap.at, StartTime: started}
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
		rm.Schema, err = r.Pipeline.Put(ctx, baseKey(o.Cluster, id, "schema.json"), bytes.NewReader(schemaJSON))
		if err != nil {
			return m, fmt.Errorf("backup %s: schema: %w", id, err)
		}
		rm.PlainSize, rm.StoredSize = rm.Schema.PlainSize, rm.Schema.Size
		for _, t := range snap.tables {
			tp := TableParts{DB: t.db, Name: t.name, Columns: t.cols, Rows: t.rows.Load(), Parts: t.objects[i]}
			for _, p := range tp.Parts {
				rm.PlainSize += p.PlainSize
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
	for _, conn := range snap.workers {
		g.Go(func() error {
			for j := range jobs {
				if err := copyRange(ctx, o, conn, id, j.t, j.r, &rows); err != nil {
					return fmt.Errorf("table %s.%s: %w", j.t.db, j.t.name, err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// copyRange streams one key range of a table into parts.
func copyRange(ctx context.Context, o BackupOptions, conn *sql.Conn, id string, t *table, r keyRange, total *atomic.Int64) error {
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
	err := eachRow(ctx, conn, q, len(t.cols), func(vals []sqldrv.Value) error {
		var err error
		if buf, err = appendRow(buf, vals); err != nil {
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

// eachRow runs query q on conn and calls fn with each row's values, which
// are valid only until fn returns.
//
// A prepared statement's rows come in the binary protocol: the server
// sends numbers and times as binary values instead of printing them, and
// the driver does not parse them back. Measured on 4 sbtest tables of
// 500k rows: server CPU 1.65 -> 1.27 s, drctl 4.25 -> 3.4 CPU-s. The rows
// are read from the driver itself, not through database/sql, whose Next
// and Scan (a lock, and a conversion by reflection per column) cost
// more than the driver's reading.
func eachRow(ctx context.Context, conn *sql.Conn, q string, cols int, fn func([]sqldrv.Value) error) error {
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(sqldrv.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("the MySQL driver's connection (%T) cannot prepare statements", dc)
		}
		stmt, err := pc.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		defer stmt.Close()
		sq, ok := stmt.(sqldrv.StmtQueryContext)
		if !ok {
			return fmt.Errorf("the MySQL driver's statement (%T) cannot query with a context", stmt)
		}
		rows, err := sq.QueryContext(ctx, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		vals := make([]sqldrv.Value, cols)
		for {
			if err := rows.Next(vals); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			if err := fn(vals); err != nil {
				return err
			}
		}
	})
}

// putPart writes one part to every region in parallel. The part is in
// memory: it is hashed and compressed once for every region.
func putPart(ctx context.Context, o BackupOptions, id string, t *table, data []byte) error {
	key := baseKey(o.Cluster, id, fmt.Sprintf("t%05d-%05d", t.idx, t.parts.Add(1)))
	objs := make([]storage.Object, len(o.Regions))
	sum := sha256.Sum256(data)
	plain := &storage.Plain{Data: data}
	g, ctx := errgroup.WithContext(ctx)
	for i, r := range o.Regions {
		g.Go(func() error {
			obj := r.Pipeline.Described(hex.EncodeToString(sum[:]), int64(len(data)))
			obj.Key = key
			obj, err := r.Pipeline.PutPlain(ctx, obj, plain)
			objs[i] = obj
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range objs {
		t.objects[i] = append(t.objects[i], objs[i])
	}
	return nil
}

// escapes maps the bytes LOAD DATA's default format escapes to the letter
// after the backslash; 0 means the byte goes as it is.
var escapes = [256]byte{'\\': '\\', '\t': 't', '\n': 'n', '\r': 'r', 0: '0'}

// appendRow encodes one row in LOAD DATA's default format: fields separated by
// tabs, rows by newlines, \N for NULL, backslash escapes. Runs of bytes that
// need no escape are appended whole (byte by byte it was most of a
// snapshot's client CPU). Numbers are printed as database/sql prints them into
// a RawBytes (strconv, shortest float that reads back).
func appendRow(buf []byte, vals []sqldrv.Value) ([]byte, error) {
	for i, v := range vals {
		if i > 0 {
			buf = append(buf, '\t')
		}
		switch v := v.(type) {
		case nil:
			buf = append(buf, '\\', 'N')
		case []byte:
			buf = appendEscaped(buf, v)
		case int64:
			buf = strconv.AppendInt(buf, v, 10)
		case uint64:
			buf = strconv.AppendUint(buf, v, 10)
		case float64:
			buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
		case float32:
			buf = strconv.AppendFloat(buf, float64(v), 'g', -1, 32)
		case string:
			buf = appendEscaped(buf, []byte(v))
		default:
			return buf, fmt.Errorf("column %d: the driver returned a %T, which a snapshot does not write", i+1, v)
		}
	}
	return append(buf, '\n'), nil
}

// appendEscaped appends v with LOAD DATA's backslash escapes.
func appendEscaped(buf, v []byte) []byte {
	start := 0
	for j, c := range v {
		if e := escapes[c]; e != 0 {
			buf = append(append(buf, v[start:j]...), '\\', e)
			start = j + 1
		}
	}
	return append(buf, v[start:]...)
}

func quote(ident string) string { return "`" + strings.ReplaceAll(ident, "`", "``") + "`" }
