package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/replication"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
	"github.com/drkit/drkit/storage"
)

// CreateOptions say which standby to make, from where.
type CreateOptions struct {
	Cluster config.Cluster
	// Name and Region register the standby; Region's store holds the base
	// backup and WAL it is made from.
	Name   string
	Region *storage.Region
	// DSN is how the standby will be reached; its port is the port it runs on.
	DSN string
	// DataDir is the new data folder (new or empty; a new one gets its
	// parent's owner, which PostgreSQL then runs as).
	DataDir string
	// RestoreCommand is the standby's restore_command: drctl wal-fetch
	// against Region.
	RestoreCommand string
	// FromStore makes a standby that replays from the store only.
	FromStore bool
	Catalog   *replication.Catalog
	Log       *slog.Logger
	Progress  func(done, total int64)
}

// CreateResult says what Create did.
type CreateResult struct {
	Record   replication.Record `json:"replica"`
	Existing bool               `json:"existing"`
	Backup   string             `json:"backup,omitempty"`
}

// Create makes a standby of the cluster; see the package doc. Running it
// again for a standby it made (the same data folder) only starts it if it is
// stopped. Every check that can refuse runs before anything is written.
func Create(ctx context.Context, o CreateOptions) (CreateResult, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := replication.CheckName(o.Name); err != nil {
		return CreateResult{}, err
	}
	port, err := dsnPort(o.DSN)
	if err != nil {
		return CreateResult{}, err
	}
	rec := replication.Record{Cluster: o.Cluster.Name, Name: o.Name, Engine: "postgres", Region: o.Region.Name,
		DSN: o.DSN, Mode: "stream", DataDir: o.DataDir, Status: replication.RecordCreating, Created: time.Now().UTC()}
	if o.FromStore {
		rec.Mode = "from-store"
	}
	if existing, err := isStandbyDir(o.DataDir); err != nil {
		return CreateResult{}, err
	} else if existing {
		return resume(ctx, o, rec)
	}
	if answers(ctx, o.DSN) {
		return CreateResult{}, fmt.Errorf("a server already answers at %s: give the standby a free port in --dsn; nothing was changed", config.RedactDSN(o.DSN))
	}
	info, backup, err := source(ctx, o)
	if err != nil {
		return CreateResult{}, err
	}
	bin, err := pgsnap.BinDir(backup.ServerVersion)
	if err != nil {
		return CreateResult{}, err
	}
	standby := &pgsnap.Standby{}
	if !o.FromStore {
		if standby, err = prepareStreaming(ctx, o, info); err != nil {
			return CreateResult{}, err
		}
	}
	if err := o.Catalog.Put(ctx, rec); err != nil {
		return CreateResult{}, fmt.Errorf("register standby %s: %w", o.Name, err)
	}
	res, err := pgsnap.Restore(ctx, pgsnap.RestoreOptions{Cluster: o.Cluster.Name, Region: o.Region, TargetDir: o.DataDir,
		RestoreCommand: o.RestoreCommand, Port: port, Log: o.Log, Progress: o.Progress, Standby: standby})
	if err != nil {
		return CreateResult{}, o.Catalog.Failed(ctx, rec, err)
	}
	rec.Backup = res.Backup.ID
	o.Log.Info("base backup unpacked; starting the standby", "replica", o.Name, "dir", o.DataDir, "port", port)
	if err := pgsnap.StartStandby(ctx, o.DataDir, bin); err != nil {
		return CreateResult{}, o.Catalog.Failed(ctx, rec, err)
	}
	rec.Status = replication.RecordReady
	return CreateResult{Record: rec, Backup: res.Backup.ID}, o.Catalog.Put(ctx, rec)
}

// source checks that the region holds a backup of this very primary (same
// system) and returns the region's cluster facts and its newest backup.
func source(ctx context.Context, o CreateOptions) (pgwal.ClusterInfo, pgsnap.Manifest, error) {
	info, err := (&pgwal.Catalog{Pipeline: o.Region.Pipeline, Cluster: o.Cluster.Name}).ReadInfo(ctx)
	if err != nil {
		return info, pgsnap.Manifest{}, fmt.Errorf("region %s holds nothing of cluster %s yet (run drd or drctl backup first): %w", o.Region.Name, o.Cluster.Name, err)
	}
	backups, _, err := pgsnap.ListBackups(ctx, o.Region.Pipeline, o.Cluster.Name)
	if err != nil {
		return info, pgsnap.Manifest{}, err
	}
	if len(backups) == 0 {
		return info, pgsnap.Manifest{}, fmt.Errorf("region %s holds no complete base backup of %s: take one with drctl backup --cluster %s", o.Region.Name, o.Cluster.Name, o.Cluster.Name)
	}
	return info, backups[len(backups)-1], nil
}

// prepareStreaming checks that the primary answers as the system the region
// holds and creates the standby's slot on it.
func prepareStreaming(ctx context.Context, o CreateOptions, info pgwal.ClusterInfo) (*pgsnap.Standby, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, o.Cluster.DSN)
	if err != nil {
		return nil, fmt.Errorf("primary %s: %w (a streaming standby needs it; --from-store makes one that does not); nothing was changed", config.RedactDSN(o.Cluster.DSN), err)
	}
	defer conn.Close(context.Background())
	var sysID string
	if err := conn.QueryRow(cctx, "SELECT system_identifier::text FROM pg_control_system()").Scan(&sysID); err != nil {
		return nil, fmt.Errorf("primary: read system identifier: %w", err)
	}
	if sysID != info.SystemIdentifier {
		return nil, fmt.Errorf("primary %s is system %s but region %s holds system %s's WAL: the config's dsn points at another server; nothing was changed",
			config.RedactDSN(o.Cluster.DSN), sysID, o.Region.Name, info.SystemIdentifier)
	}
	slot := SlotName(o.Name)
	_, err = conn.Exec(cctx, "SELECT pg_create_physical_replication_slot($1, true)", slot)
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42710") { // duplicate_object: made by an earlier run
		return nil, fmt.Errorf("primary: create replication slot %s: %w", slot, err)
	}
	return &pgsnap.Standby{PrimaryConnInfo: withApplicationName(o.Cluster.DSN, o.Name), Slot: slot}, nil
}

// resume starts a standby made earlier in the same folder, if stopped.
func resume(ctx context.Context, o CreateOptions, rec replication.Record) (CreateResult, error) {
	if !answers(ctx, o.DSN) {
		version, err := os.ReadFile(filepath.Join(o.DataDir, "PG_VERSION"))
		if err != nil {
			return CreateResult{}, err
		}
		bin, err := pgsnap.BinDir(strings.TrimSpace(string(version)))
		if err != nil {
			return CreateResult{}, err
		}
		if err := pgsnap.StartStandby(ctx, o.DataDir, bin); err != nil {
			return CreateResult{}, err
		}
	}
	if old, err := o.Catalog.Get(ctx, o.Name); err == nil {
		rec.Created, rec.Backup = old.Created, old.Backup
	}
	rec.Status = replication.RecordReady
	return CreateResult{Record: rec, Existing: true, Backup: rec.Backup}, o.Catalog.Put(ctx, rec)
}

// isStandbyDir reports whether dir holds a standby drkit made; a folder
// holding anything else is refused.
func isStandbyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("data folder: %w", err)
	}
	auto, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	if _, err := os.Stat(filepath.Join(dir, "standby.signal")); err == nil && strings.Contains(string(auto), "# Written by drkit restore") {
		return true, nil
	}
	return false, fmt.Errorf("data folder %s is not empty and is not a standby drkit made: give a new or empty folder; nothing was changed", dir)
}

// answers reports whether a PostgreSQL server accepts connections at dsn.
func answers(ctx context.Context, dsn string) bool {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(cctx, dsn)
	if err != nil {
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) // it answered, if only to refuse
	}
	conn.Close(context.Background())
	return true
}

func dsnPort(dsn string) (int, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return 0, fmt.Errorf("standby dsn: %w", err)
	}
	if cfg.Port == 0 {
		return 5432, nil
	}
	return int(cfg.Port), nil
}

var slotUnsafe = regexp.MustCompile(`[^a-z0-9_]`)

// SlotName is the primary's slot for standby name.
func SlotName(name string) string {
	return "drkit_replica_" + slotUnsafe.ReplaceAllString(strings.ToLower(name), "_")
}

// withApplicationName adds application_name=name to a libpq connection
// string, so pg_stat_replication names the standby.
func withApplicationName(dsn, name string) string {
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			q.Set("application_name", name)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " application_name='" + name + "'" // names are letters, digits, . _ - (CheckName)
}
