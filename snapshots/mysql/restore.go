package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	binlog "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// RestoreOptions say what to restore, from where, into what.
type RestoreOptions struct {
	Cluster string
	Region  *storage.Region
	// TargetDSN is the empty server to restore into (go-sql-driver DSN); its
	// user needs all privileges (it creates databases, users and a replication
	// connection).
	TargetDSN string
	// Stop is where the binlog replay stops; the zero value replays all the
	// region holds.
	Stop binlog.StopAt
	// NoReplay restores the snapshot only.
	NoReplay bool
	// BackupID restores that snapshot instead of the newest before the target.
	BackupID string
	// AcceptGap replays up to a gap in the region's binlog instead of
	// refusing the restore.
	AcceptGap bool
	// Workers load parts in parallel (default: 2 per core, at most 8).
	Workers int
	// ReplayListen is the address the target connects to for the replay.
	ReplayListen string
	Log          *slog.Logger
	// Phase, if set, is told when the restore moves on to another phase
	// (a drill times them).
	Phase func(name string)
	// Progress, if set, is told the rows loaded so far (the replay logs its own
	// progress).
	Progress func(rows int64)
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	Backup   Manifest    `json:"backup"`
	Replayed int         `json:"transactions_replayed"`
	GTIDPos  string      `json:"gtid_pos"`
	Last     *LastCommit `json:"last_commit,omitempty"`
	// Reach is how far the region's binlog replays from the snapshot.
	Reach *binlog.Reach `json:"reach,omitempty"`
}

// LastCommit is the last transaction the restore applied.
type LastCommit struct {
	GTID string    `json:"gtid"`
	Time time.Time `json:"time"`
}

// Restore loads the newest snapshot before the target into the empty target
// server and replays the region's binlog up to the target.
func Restore(ctx context.Context, o RestoreOptions) (RestoreResult, error) {
	var res RestoreResult
	if o.Workers <= 0 {
		o.Workers = min(2*runtime.NumCPU(), 8)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m, err := pickBackup(ctx, o)
	if err != nil {
		return res, err
	}
	res.Backup = m
	if !o.NoReplay {
		if res.Reach, err = checkReach(ctx, o, m); err != nil {
			return res, err
		}
	}
	db, err := openTarget(o.TargetDSN, o.Workers)
	if err != nil {
		return res, err
	}
	defer db.Close()
	if err := CheckEmpty(ctx, db); err != nil {
		return res, err
	}
	schema, err := readSchema(ctx, o.Region.Pipeline, m)
	if err != nil {
		return res, err
	}
	o.Log.Info("restoring snapshot", "cluster", o.Cluster, "region", o.Region.Name, "backup", m.ID, "gtid_pos", m.GTIDPos, "rows", m.Rows)
	if err := load(ctx, o, db, m, schema); err != nil {
		return res, err
	}
	pos, err := binlog.ParsePos(m.GTIDPos)
	if err != nil {
		return res, err
	}
	if err := setGTIDState(ctx, db, pos); err != nil {
		return res, err
	}
	res.GTIDPos = m.GTIDPos
	if o.NoReplay {
		return res, nil
	}
	return replay(ctx, o, db, m, pos, res)
}

func replay(ctx context.Context, o RestoreOptions, db *sql.DB, m Manifest, pos binlog.Pos, res RestoreResult) (RestoreResult, error) {
	snapshots.Enter(o.Phase, "replay")
	cfg, _ := driver.ParseDSN(o.TargetDSN)
	host, _, _ := net.SplitHostPort(cfg.Addr)
	r := &binlog.Replay{
		Feed: &binlog.Feed{
			Catalog:   &binlog.Catalog{Pipeline: o.Region.Pipeline, Cluster: o.Cluster},
			From:      pos,
			Target:    o.Stop,
			StopAtGap: o.AcceptGap,
		},
		Target: db, TargetHost: host, Listen: o.ReplayListen, Parallel: min(runtime.NumCPU(), 4), Log: o.Log,
	}
	rr, err := r.Run(ctx)
	if err != nil {
		return res, fmt.Errorf("replay binlog from region %s after %s: %w", o.Region.Name, m.GTIDPos, err)
	}
	res.Replayed, res.GTIDPos = rr.Txns, rr.Pos.String()
	if rr.Last != nil {
		res.Last = &LastCommit{GTID: rr.Last.GTID.String(), Time: time.Unix(int64(rr.Last.Time), 0).UTC()}
	}
	o.Log.Info("binlog replayed", "cluster", o.Cluster, "transactions", rr.Txns, "gtid_pos", res.GTIDPos)
	return res, nil
}

// checkReach follows the region's binlog from the snapshot before anything is
// loaded, and refuses a target beyond a gap (snapshots.ErrGap; with no
// target too, unless AcceptGap) or beyond the binlog's end (ErrNotFound).
func checkReach(ctx context.Context, o RestoreOptions, m Manifest) (*binlog.Reach, error) {
	pos, err := binlog.ParsePos(m.GTIDPos)
	if err != nil {
		return nil, err
	}
	feed := &binlog.Feed{Catalog: &binlog.Catalog{Pipeline: o.Region.Pipeline, Cluster: o.Cluster}, From: pos, Target: o.Stop}
	r, err := feed.Reach(ctx)
	if err != nil {
		return nil, err
	}
	reach := fmt.Sprintf("from snapshot %s (%s) the region's binlog replays to %s", m.ID, m.GTIDPos, r.End)
	if !r.EndTime.IsZero() {
		reach += fmt.Sprintf(", last commit %s", r.EndTime.Format(time.RFC3339))
	}
	g := o.Stop.GTID
	switch {
	case g != nil && !r.End.Contains(*g) && r.Gap != "":
		return &r, fmt.Errorf("region %s cannot restore %s to GTID %s: %s; %s: %w (run drctl verify; restore from another region, or choose an earlier target)", o.Region.Name, o.Cluster, g, r.Gap, reach, snapshots.ErrGap)
	case g != nil && !r.End.Contains(*g):
		return &r, fmt.Errorf("region %s holds no transaction %s of %s: %s: %w", o.Region.Name, g, o.Cluster, reach, storage.ErrNotFound)
	case g == nil && r.Gap == "" && !o.Stop.Time.IsZero() && o.Stop.Time.After(newestRestorable(m, r)):
		// Checked before loading anything: a target past what the region
		// holds would load the snapshot and replay all only to fail.
		return &r, fmt.Errorf("region %s cannot restore %s to %s: it holds the binlog to %s only (the newest restorable time; %s). Choose an earlier --target-time, or omit it to restore the newest: %w",
			o.Region.Name, o.Cluster, o.Stop.Time.Format(time.RFC3339Nano), newestRestorable(m, r).Format(time.RFC3339Nano), reach, storage.ErrNotFound)
	case g == nil && r.Gap != "" && (!o.Stop.Time.IsZero() && r.EndTime.Before(o.Stop.Time) || o.Stop.Time.IsZero() && !o.AcceptGap):
		return &r, fmt.Errorf("region %s cannot restore %s to %s: %s; %s, and the binlog stored after the gap (to %s) would be lost: %w. "+
			"Run drctl verify; restore from another region; or pass --accept-gap to restore up to the gap",
			o.Region.Name, o.Cluster, o.Stop, r.Gap, reach, r.Beyond, snapshots.ErrGap)
	}
	return &r, nil
}

// newestRestorable is the latest time the region is known to hold every
// transaction up to: the last commit of the unbroken chain from snapshot m
// (or the snapshot's end). Not when the region stored that chain's last
// chunk: a copy or a region catching up stores a chunk long after its
// commits, while the transactions committed after them may still be
// missing there, and a restore to a time between the two would silently
// lack them.
func newestRestorable(m Manifest, r binlog.Reach) time.Time {
	if r.EndTime.After(m.StopTime) {
		return r.EndTime
	}
	return m.StopTime
}

// pickBackup returns the newest complete snapshot before the target.
func pickBackup(ctx context.Context, o RestoreOptions) (Manifest, error) {
	list, damaged, err := ListBackups(ctx, o.Region.Pipeline, o.Cluster)
	if err != nil {
		return Manifest{}, err
	}
	for _, d := range damaged {
		o.Log.Warn("skipping a damaged backup manifest", "region", o.Region.Name, "manifest", d.Key, "problem", d.Problem)
		if o.BackupID != "" && d.ID() == o.BackupID {
			return Manifest{}, fmt.Errorf("backup %s in region %s is damaged: %s", o.BackupID, o.Region.Name, d.Problem)
		}
	}
	if o.BackupID != "" {
		list = slices.DeleteFunc(list, func(m Manifest) bool { return m.ID != o.BackupID })
		if len(list) == 0 {
			return Manifest{}, fmt.Errorf("region %s has no backup %s of %s (drctl backups lists them): %w", o.Region.Name, o.BackupID, o.Cluster, storage.ErrNotFound)
		}
	}
	for i := len(list) - 1; i >= 0; i-- {
		m := list[i]
		if !o.Stop.Time.IsZero() && m.SnapshotTime.After(o.Stop.Time) {
			continue
		}
		if g := o.Stop.GTID; g != nil {
			pos, err := binlog.ParsePos(m.GTIDPos)
			if err != nil {
				return m, err
			}
			if have, ok := pos[g.Domain]; ok && have.Seq > g.Seq {
				continue
			}
		}
		return m, nil
	}
	if len(list) == 0 {
		return Manifest{}, fmt.Errorf("region %s holds no complete backup of cluster %s: %w", o.Region.Name, o.Cluster, storage.ErrNotFound)
	}
	return Manifest{}, fmt.Errorf("region %s holds no backup of cluster %s taken before %s (the oldest is %s at %s): %w",
		o.Region.Name, o.Cluster, o.Stop, list[0].ID, list[0].GTIDPos, storage.ErrNotFound)
}

func openTarget(dsn string, workers int) (*sql.DB, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("--target-dsn: %w", err)
	}
	cfg.MultiStatements = false
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(workers + 2)
	return db, nil
}

// CheckEmpty refuses a target that holds any database of its own with
// something in it (a table, view, routine or event), or that is not MariaDB;
// it changes nothing. Empty databases, such as the test database
// mariadb-install-db creates, do not count: load replaces them.
func CheckEmpty(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "SELECT s.SCHEMA_NAME FROM information_schema.SCHEMATA s WHERE "+hasObjects("s.SCHEMA_NAME"))
	if err != nil {
		return fmt.Errorf("target server: %w", err)
	}
	defer rows.Close()
	var have []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		if !systemDBs[name] {
			have = append(have, name)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(have) > 0 {
		return fmt.Errorf("the target server is not empty: it has database(s) %s; restore into a new server, or drop them first (nothing was changed)", strings.Join(have, ", "))
	}
	var version string
	if err := db.QueryRowContext(ctx, "SELECT @@version").Scan(&version); err != nil {
		return err
	}
	if !strings.Contains(version, "MariaDB") {
		return fmt.Errorf("the target server is %s; a MariaDB snapshot restores into MariaDB", version)
	}
	return nil
}

// ClearTarget drops every database of the server but the system ones: a
// drill target (drill.target) after the drill. Accounts the restore created
// stay (a restore keeps an existing account as it is).
func ClearTarget(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
	if err != nil {
		return fmt.Errorf("drill target: %w", err)
	}
	var drop []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		if !systemDBs[name] {
			drop = append(drop, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	c, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("drill target: %w", err)
	}
	defer c.Close()
	// A foreign key from one database into another must not stop the drop.
	if _, err := c.ExecContext(ctx, "SET SESSION foreign_key_checks = 0"); err != nil {
		return fmt.Errorf("drill target: %w", err)
	}
	for _, name := range drop {
		if _, err := c.ExecContext(ctx, "DROP DATABASE "+quote(name)); err != nil {
			return fmt.Errorf("drill target: drop database %s: %w", name, err)
		}
	}
	return nil
}

// hasObjects is the SQL condition that database schema (a column or a
// placeholder, used three times) holds something: a table or view, a routine
// or an event. What it does not hold is not data, and a restore replaces it.
func hasObjects(schema string) string {
	return strings.ReplaceAll(`(EXISTS (SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db})
		OR EXISTS (SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {db})
		OR EXISTS (SELECT 1 FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {db}))`, "{db}", schema)
}

// dropIfEmpty drops database name on the target if it exists with nothing
// in it (CheckEmpty allowed it), so that the snapshot's CREATE DATABASE, with
// its character set and collation, makes it as the source had it.
func dropIfEmpty(ctx context.Context, c *sql.Conn, name string) error {
	var full bool
	if err := c.QueryRowContext(ctx, "SELECT "+hasObjects("?"), name, name, name).Scan(&full); err != nil {
		return fmt.Errorf("target database %s: %w", name, err)
	}
	if full {
		return fmt.Errorf("the target server's database %s is no longer empty: restore into a new server (nothing of %s was changed)", name, name)
	}
	return execAll(ctx, c, "DROP DATABASE IF EXISTS "+quote(name))
}

func readSchema(ctx context.Context, p *storage.Pipeline, m Manifest) (Schema, error) {
	var s Schema
	rc, err := p.Open(ctx, m.Schema)
	if err != nil {
		return s, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("region %s: %s: %w", p.Region, m.Schema.Key, err)
	}
	return s, nil
}

// loadSession is how every loading connection runs: unlogged (the replay, not
// the load, continues the source's binlog), unchecked (the rows were valid on
// the source) and in the snapshot's byte and time representation.
var loadSession = []string{
	sessionSetup,
	"SET SESSION sql_log_bin=0, unique_checks=0, foreign_key_checks=0, sql_mode='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
}

func load(ctx context.Context, o RestoreOptions, db *sql.DB, m Manifest, s Schema) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := execAll(ctx, c, loadSession...); err != nil {
		return err
	}
	for _, d := range s.Databases {
		if err := dropIfEmpty(ctx, c, d.Name); err != nil {
			return err
		}
		if err := execAll(ctx, c, d.Create); err != nil {
			return fmt.Errorf("create database %s: %w", d.Name, err)
		}
	}
	for _, t := range s.Tables {
		if err := execAll(ctx, c, "USE "+quote(t.DB), t.Create); err != nil {
			return fmt.Errorf("create table %s.%s: %w", t.DB, t.Name, err)
		}
	}
	if err := loadParts(ctx, o, db, m); err != nil {
		return err
	}
	return createPostData(ctx, o, c, s)
}

// loadParts loads every part with LOAD DATA, Workers at a time.
func loadParts(ctx context.Context, o RestoreOptions, db *sql.DB, m Manifest) error {
	type job struct {
		t   TableParts
		obj storage.Object
	}
	jobs := make(chan job)
	src := partSource{p: o.Region.Pipeline, zstd: m.PartCompression == "zstd"}
	var loaded atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		for _, t := range m.Tables {
			for _, p := range t.Parts {
				select {
				case jobs <- job{t, p}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	})
	for range o.Workers {
		g.Go(func() error {
			c, err := db.Conn(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := execAll(ctx, c, loadSession...); err != nil {
				return err
			}
			for j := range jobs {
				n, err := loadPartRetrying(ctx, src, c, j.t, j.obj)
				if err != nil {
					return fmt.Errorf("load %s.%s from %s: %w", j.t.DB, j.t.Name, j.obj.Key, err)
				}
				if o.Progress != nil {
					o.Progress(loaded.Add(n))
				}
			}
			return nil
		})
	}
	return g.Wait()
}

var readerSeq atomic.Int64

// loadPartRetrying loads a part, again when InnoDB chose its LOAD DATA as a
// deadlock victim (parts of one table load in parallel and their index
// page locks can cross). Each LOAD DATA commits on its own (autocommit), so
// the victim left no row behind and the part is simply read again.
func loadPartRetrying(ctx context.Context, src partSource, c *sql.Conn, t TableParts, obj storage.Object) (int64, error) {
	for attempt := 1; ; attempt++ {
		n, err := loadPart(ctx, src, c, t, obj)
		var myErr *driver.MySQLError
		if err == nil || attempt == 5 || !errors.As(err, &myErr) || (myErr.Number != 1213 && myErr.Number != 1205) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Duration(attempt*50) * time.Millisecond):
		}
	}
}

func loadPart(ctx context.Context, src partSource, c *sql.Conn, t TableParts, obj storage.Object) (int64, error) {
	rc, err := src.open(ctx, obj)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	name := fmt.Sprintf("drkit-%d", readerSeq.Add(1))
	var readErr error
	driver.RegisterReaderHandler(name, func() io.Reader { return errReader{rc, &readErr} })
	defer driver.DeregisterReaderHandler(name)
	cols, sets := loadColumns(t.Columns)
	q := fmt.Sprintf(`LOAD DATA LOCAL INFILE 'Reader::%s' INTO TABLE %s.%s CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' (%s)%s`,
		name, quote(t.DB), quote(t.Name), cols, sets)
	// The part's checksum is known only at its end, after the server has
	// inserted its rows: the load runs in a transaction that commits only
	// once the whole part was read and checked, so a damaged part leaves
	// none of its rows behind.
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	r, err := tx.ExecContext(ctx, q)
	if readErr != nil {
		// A corrupt or truncated part: the checksum error names the object.
		_ = tx.Rollback()
		return 0, readErr
	}
	if err == nil {
		err = tx.Commit()
	} else {
		_ = tx.Rollback()
	}
	if err != nil {
		if strings.Contains(err.Error(), "local_infile") || strings.Contains(err.Error(), "1148") {
			return 0, fmt.Errorf("%w (set local_infile=ON on the target server)", err)
		}
		return 0, err
	}
	n, _ := r.RowsAffected()
	return n, nil
}

// partSource opens a snapshot's parts as LOAD DATA text.
type partSource struct {
	p *storage.Pipeline
	// zstd: each object holds a zstd frame drkit made (manifest format 2).
	zstd bool
}

func (s partSource) open(ctx context.Context, obj storage.Object) (io.ReadCloser, error) {
	rc, err := s.p.Open(ctx, obj)
	if err != nil || !s.zstd {
		return rc, err
	}
	zr, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1))
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("region %s: decompress %s: %w", s.p.Region, obj.Key, err)
	}
	return &frameReader{zr: zr, rc: rc, region: s.p.Region, key: obj.Key}, nil
}

// frameReader decodes a part's frame. The decoder checks the frame's
// content checksum (the text's); the object reader under it checks the
// frame's SHA-256 and sizes once it is read to its end, which the frame
// reader makes sure of before it reports the end.
type frameReader struct {
	zr          *zstd.Decoder
	rc          io.ReadCloser
	region, key string
}

func (f *frameReader) Read(p []byte) (int, error) {
	n, err := f.zr.Read(p)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, storage.ErrChecksum):
		return n, err
	case err == io.EOF:
		if _, err := io.Copy(io.Discard, f.rc); err != nil {
			return n, err
		}
		return n, io.EOF
	}
	// The object's own check names a damaged object best, where it can.
	if _, verr := io.Copy(io.Discard, f.rc); verr != nil {
		return n, verr
	}
	return n, fmt.Errorf("region %s: %s: %w (decompress: %v)", f.region, f.key, storage.ErrChecksum, err)
}

func (f *frameReader) Close() error {
	f.zr.Close()
	return f.rc.Close()
}

// errReader remembers the pipeline's error: the driver reports a failed
// reader only as a generic LOAD DATA error.
type errReader struct {
	r   io.Reader
	err *error
}

func (e errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		*e.err = err
	}
	return n, err
}

func loadColumns(cols []Column) (list, sets string) {
	var names, assign []string
	for i, c := range cols {
		if c.Bit {
			v := fmt.Sprintf("@v%d", i)
			names = append(names, v)
			assign = append(assign, fmt.Sprintf("%s = CAST(%s AS UNSIGNED)", quote(c.Name), v))
			continue
		}
		names = append(names, quote(c.Name))
	}
	list = strings.Join(names, ", ")
	if len(assign) > 0 {
		sets = " SET " + strings.Join(assign, ", ")
	}
	return list, sets
}

// createPostData creates users, routines, views (in dependency order, by
// retrying), triggers, events and grants.
func createPostData(ctx context.Context, o RestoreOptions, c *sql.Conn, s Schema) error {
	for _, u := range s.Users {
		var exists int
		user, host := splitAccount(u.Name)
		if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?", user, host).Scan(&exists); err != nil {
			return err
		}
		if exists > 0 {
			o.Log.Info("restore: user exists on the target; kept as is", "user", u.Name)
			continue
		}
		if err := execAll(ctx, c, u.Create); err != nil {
			return fmt.Errorf("create user %s: %w", u.Name, err)
		}
	}
	for _, r := range s.Routines {
		if err := execObject(ctx, c, r); err != nil {
			return fmt.Errorf("create routine %s.%s: %w", r.DB, r.Name, err)
		}
	}
	if err := createViews(ctx, c, s.Views); err != nil {
		return err
	}
	for _, t := range s.Triggers {
		if err := execObject(ctx, c, t); err != nil {
			return fmt.Errorf("create trigger %s.%s: %w", t.DB, t.Name, err)
		}
	}
	for _, e := range s.Events {
		if err := execObject(ctx, c, e); err != nil {
			return fmt.Errorf("create event %s.%s: %w", e.DB, e.Name, err)
		}
	}
	for _, u := range s.Users {
		for _, g := range u.Grants {
			if _, err := c.ExecContext(ctx, g); err != nil {
				o.Log.Warn("restore: a grant failed; the user exists without it", "user", u.Name, "grant", redactGrant(g), "err", err)
			}
		}
	}
	// Back to normal: the replay's own statements are logged as the server says.
	return execAll(ctx, c, "SET SESSION sql_log_bin=1")
}

// createViews creates views until none is left, since one view may select
// from another: each pass creates those whose dependencies exist.
func createViews(ctx context.Context, c *sql.Conn, views []Object) error {
	left := views
	for len(left) > 0 {
		var next []Object
		var lastErr error
		for _, v := range left {
			if err := execAll(ctx, c, "USE "+quote(v.DB), v.Create); err != nil {
				next, lastErr = append(next, v), fmt.Errorf("create view %s.%s: %w", v.DB, v.Name, err)
			}
		}
		if len(next) == len(left) {
			return lastErr
		}
		left = next
	}
	return nil
}

func execObject(ctx context.Context, c *sql.Conn, o Object) error {
	return execAll(ctx, c, "USE "+quote(o.DB), "SET SESSION sql_mode='"+escapeString(o.SQLMode)+"'", o.Create,
		"SET SESSION sql_mode='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'")
}

func execAll(ctx context.Context, c *sql.Conn, qs ...string) error {
	for _, q := range qs {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// setGTIDState makes the target continue the source's GTID history from the
// snapshot: gtid_slave_pos is where the replay starts, and a binlogging target
// gets the same binlog state so gtid_strict_mode accepts what follows.
func setGTIDState(ctx context.Context, db *sql.DB, pos binlog.Pos) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	var logBin int
	var binlogPos string
	if err := c.QueryRowContext(ctx, "SELECT @@log_bin, @@GLOBAL.gtid_binlog_pos").Scan(&logBin, &binlogPos); err != nil {
		return err
	}
	if logBin == 1 && binlogPos == "" {
		// The load ran unlogged, so the binlog is still empty: set its state.
		if err := execAll(ctx, c, "RESET MASTER", "SET GLOBAL gtid_binlog_state='"+pos.String()+"'"); err != nil {
			return fmt.Errorf("target: set gtid_binlog_state to %s: %w", pos, err)
		}
	}
	if err := execAll(ctx, c, "SET GLOBAL gtid_slave_pos='"+pos.String()+"'"); err != nil {
		return fmt.Errorf("target: set gtid_slave_pos to %s (stop its replication first): %w", pos, err)
	}
	return nil
}

func splitAccount(acct string) (user, host string) {
	u, h, _ := strings.Cut(acct, "'@'")
	return unescape(strings.TrimPrefix(u, "'")), unescape(strings.TrimSuffix(h, "'"))
}

func unescape(s string) string { return strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(s) }

// redactGrant drops a password hash from a GRANT for logging.
func redactGrant(g string) string {
	if i := strings.Index(strings.ToUpper(g), " IDENTIFIED "); i >= 0 {
		return g[:i] + " IDENTIFIED ..."
	}
	return g
}
