package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/replication"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
	"github.com/drkit/drkit/storage"
)

// CreateOptions say which replica to make, from where.
type CreateOptions struct {
	Cluster config.Cluster
	// Name and Region register the replica; Region's store holds the snapshot
	// and binlog it is made from.
	Name   string
	Region *storage.Region
	// DSN reaches the empty server that becomes the replica; its user needs
	// all privileges.
	DSN string
	// Catalog registers the replica (every region of the cluster).
	Catalog *replication.Catalog
	// ReplayListen is the address the server connects back to for the binlog
	// replay (default: chosen by snapshots/mysql).
	ReplayListen string
	// Wait bounds the wait for replication to run after the load (default 1m).
	Wait     time.Duration
	Log      *slog.Logger
	Progress func(rows int64)
}

// CreateResult says what Create did.
type CreateResult struct {
	Record replication.Record `json:"replica"`
	// Existing is true when the server already replicated from the primary:
	// nothing was loaded.
	Existing bool                  `json:"existing"`
	Restore  *mysnap.RestoreResult `json:"restore,omitempty"`
	// Warnings are conditions that do not stop replication but will matter
	// later (for example at a promotion).
	Warnings []string `json:"warnings,omitempty"`
}

// Create makes the server at o.DSN a replica of the cluster's primary; see the
// package doc. Running it again on a replica of the same primary only makes
// sure replication runs. Every check that can refuse (servers reachable,
// target empty, versions) runs before anything is changed.
func Create(ctx context.Context, o CreateOptions) (CreateResult, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Wait <= 0 {
		o.Wait = time.Minute
	}
	if err := replication.CheckName(o.Name); err != nil {
		return CreateResult{}, err
	}
	src, err := sourceOf(o.Cluster.DSN)
	if err != nil {
		return CreateResult{}, err
	}
	target, err := open(ctx, "replica", o.DSN, 2)
	if err != nil {
		return CreateResult{}, err
	}
	defer target.Close()
	primary, err := open(ctx, "primary", o.Cluster.DSN, 1)
	if err != nil {
		return CreateResult{}, fmt.Errorf("%w; the replica was not changed", err)
	}
	defer primary.Close()
	if err := compatible(ctx, primary, target); err != nil {
		return CreateResult{}, err
	}
	rec := replication.Record{Cluster: o.Cluster.Name, Name: o.Name, Engine: "mysql", Region: o.Region.Name,
		DSN: o.DSN, Mode: "stream", Status: replication.RecordCreating, Created: time.Now().UTC()}
	st, err := readSlaveStatus(ctx, target)
	if err != nil {
		return CreateResult{}, fmt.Errorf("replica: %w", err)
	}
	if st.configured {
		return resume(ctx, o, target, src, st, rec)
	}
	if err := mysnap.CheckEmpty(ctx, target); err != nil {
		return CreateResult{}, fmt.Errorf("replica %s: %w", config.RedactDSN(o.DSN), err)
	}
	res := CreateResult{Warnings: binlogWarnings(ctx, target)}
	if err := o.Catalog.Put(ctx, rec); err != nil {
		return res, fmt.Errorf("register replica %s: %w", o.Name, err)
	}
	restored, err := mysnap.Restore(ctx, mysnap.RestoreOptions{Cluster: o.Cluster.Name, Region: o.Region,
		TargetDSN: o.DSN, ReplayListen: o.ReplayListen, Log: o.Log, Progress: o.Progress})
	if err != nil {
		return res, o.Catalog.Failed(ctx, rec, fmt.Errorf("load region %s's snapshot and binlog: %w", o.Region.Name, err))
	}
	res.Restore, rec.Backup = &restored, restored.Backup.ID
	o.Log.Info("snapshot loaded; connecting the replica to the primary", "replica", o.Name,
		"gtid_pos", restored.GTIDPos, "primary", src.host+":"+src.port)
	if err := startReplication(ctx, target, src); err != nil {
		return res, o.Catalog.Failed(ctx, rec, err)
	}
	if err := waitRunning(ctx, target, o.Wait); err != nil {
		return res, o.Catalog.Failed(ctx, rec, err)
	}
	rec.Status = replication.RecordReady
	res.Record = rec
	return res, o.Catalog.Put(ctx, rec)
}

// resume handles a server that replicates already: from this primary it is
// (re)started and registered; from another it is refused.
func resume(ctx context.Context, o CreateOptions, target *sql.DB, src source, st slaveStatus, rec replication.Record) (CreateResult, error) {
	if st.host != src.host || st.port != src.port {
		return CreateResult{}, fmt.Errorf("replica %s already replicates from %s:%s, not from cluster %s's primary %s:%s; nothing was changed",
			config.RedactDSN(o.DSN), st.host, st.port, o.Cluster.Name, src.host, src.port)
	}
	if st.ioRunning != "Yes" || st.sqlRun != "Yes" {
		if _, err := target.ExecContext(ctx, "START SLAVE"); err != nil {
			return CreateResult{}, fmt.Errorf("replica: START SLAVE: %w", err)
		}
	}
	if err := waitRunning(ctx, target, o.Wait); err != nil {
		return CreateResult{}, err
	}
	rec.Status = replication.RecordReady
	if old, err := o.Catalog.Get(ctx, o.Name); err == nil {
		rec.Created, rec.Backup = old.Created, old.Backup
	}
	return CreateResult{Record: rec, Existing: true}, o.Catalog.Put(ctx, rec)
}

// compatible refuses a replica older than its primary (a newer minor or
// major version may replicate from an older one, not the reverse).
func compatible(ctx context.Context, primary, target *sql.DB) error {
	var pv, tv string
	if err := primary.QueryRowContext(ctx, "SELECT @@version").Scan(&pv); err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	if err := target.QueryRowContext(ctx, "SELECT @@version").Scan(&tv); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	if versionLess(tv, pv) {
		return fmt.Errorf("the replica runs MariaDB %s, older than the primary's %s: a replica must run the same or a newer version; nothing was changed", tv, pv)
	}
	return nil
}

// versionLess compares the major.minor of two "10.11.6-MariaDB..." versions.
func versionLess(a, b string) bool {
	parse := func(v string) (int, int) {
		var maj, min int
		fmt.Sscanf(v, "%d.%d", &maj, &min)
		return maj, min
	}
	amaj, amin := parse(a)
	bmaj, bmin := parse(b)
	return amaj < bmaj || (amaj == bmaj && amin < bmin)
}

// binlogWarnings says when the replica could not feed drd's shipping after a
// promotion: it must write the binlog, replicated transactions included.
func binlogWarnings(ctx context.Context, db *sql.DB) []string {
	var logBin, slaveUpdates int
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin, @@log_slave_updates").Scan(&logBin, &slaveUpdates); err != nil {
		return []string{"could not read log_bin and log_slave_updates: " + err.Error()}
	}
	if logBin == 0 || slaveUpdates == 0 {
		return []string{"the replica runs without log_bin or log_slave_updates: after a promotion drd could not ship its binlog from where the old primary's ended; set both (and binlog_format=ROW)"}
	}
	return nil
}

// startReplication points target at the primary from its gtid_slave_pos
// (the restore left it after the last replayed transaction).
func startReplication(ctx context.Context, target *sql.DB, src source) error {
	change := "CHANGE MASTER TO MASTER_HOST=" + quote(src.host) + ", MASTER_PORT=" + src.port +
		", MASTER_USER=" + quote(src.user) + ", MASTER_PASSWORD=" + quote(src.password) +
		", MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5"
	if src.tls {
		change += ", MASTER_SSL=1"
	}
	for _, q := range []string{change, "START SLAVE", "SET GLOBAL read_only=ON"} {
		if _, err := target.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("replica: %s: %w", strings.Fields(q)[0]+" "+strings.Fields(q)[1], err)
		}
	}
	return nil
}

// waitRunning waits until both replication threads run, or returns their
// last error.
func waitRunning(ctx context.Context, db *sql.DB, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		st, err := readSlaveStatus(ctx, db)
		if err != nil {
			return fmt.Errorf("replica: %w", err)
		}
		if st.ioRunning == "Yes" && st.sqlRun == "Yes" {
			return nil
		}
		if st.sqlError != "" || (time.Now().After(deadline) && st.ioError != "") {
			return fmt.Errorf("replica: replication from %s:%s does not run: io thread %s %q, sql thread %s %q",
				st.host, st.port, st.ioRunning, st.ioError, st.sqlRun, st.sqlError)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica: replication from %s:%s not running after %s (io thread %s, sql thread %s)", st.host, st.port, within, st.ioRunning, st.sqlRun)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
