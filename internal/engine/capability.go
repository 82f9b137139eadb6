package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/lifecycle"
	"github.com/drkit/drkit/monitor"
	"github.com/drkit/drkit/replication"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// The capabilities. Each is one small interface; an engine implements those
// it has. Requests and answers are engine-neutral; an answer carries the
// engine's own value for --json (so scripts keep their shape) and its text
// for people.

// Env is what every capability call gets from the composition root.
type Env struct {
	Config  *config.Config
	Cluster config.Cluster
	Log     *slog.Logger
	// Progress reports work done of total (-1: unknown); nil shows none.
	Progress func(done, total int64)
	// Drctl is the drctl executable a restored database runs as its own
	// restore command (PostgreSQL's restore_command runs drctl wal-fetch);
	// empty: this executable.
	Drctl string
	// Phase, if set, is told when a restore (or a drill sandbox's Start)
	// moves on to another phase: "fetch base", "replay", "build indexes",
	// "start". A drill times each for its report; nil elsewhere.
	Phase func(name string)
}

// Enter tells env.Phase, if set, that the work moved on to phase name.
func (e Env) Enter(name string) {
	if e.Phase != nil {
		e.Phase(name)
	}
}

// Output is a capability's answer: Value is printed as JSON under --json,
// Text writes the form for people.
type Output struct {
	Value any
	Text  func(w io.Writer) error
	// Damaged are backup manifests the work skipped as unreadable: drctl
	// names them on stderr.
	Damaged []snapshots.Damaged
}

// Backuper takes a base backup into every given region.
type Backuper interface {
	Backup(ctx context.Context, env Env, regions []*storage.Region) (Output, error)
}

// BackupLister lists a region's complete backups, oldest first, and the
// manifests it could not read.
type BackupLister interface {
	ListBackups(ctx context.Context, env Env, r *storage.Region) (Output, []snapshots.Damaged, error)
}

// RestoreRequest is one restore, from Region only.
type RestoreRequest struct {
	Region     *storage.Region
	TargetTime *time.Time
	BackupID   string
	AcceptGap  bool
	// Flags are the engine-specific flags given (name without dashes:
	// value, "true" for a switch). The engine refuses those it does not
	// take, naming them (CheckFlags).
	Flags map[string]string
}

// Restorer restores a cluster from one region.
type Restorer interface {
	// RestoreFlags names the engine-specific restore flags it takes.
	RestoreFlags() []string
	Restore(ctx context.Context, env Env, req RestoreRequest) (Output, error)
}

// Verifier checks one region: log continuity from every backup, and
// checksums (all of them when all is set). problems > 0 fails the command.
type Verifier interface {
	Verify(ctx context.Context, env Env, r *storage.Region, all bool) (out Output, problems int, err error)
}

// StatusColumns are drctl status's columns; a StatusRow fills each.
var StatusColumns = []string{"CLUSTER", "REGION", "DURABLE LSN", "WRITTEN", "LAG BYTES", "LAG S", "LAST BACKUP", "NOTE"}

// StatusRow is one region's status: Value for --json, Cells for the table.
type StatusRow struct {
	Value any
	Cells []string
}

// StatusReader reads every ship_to region's status of a cluster from its
// store; a region that cannot be opened gives a row naming the error.
type StatusReader interface {
	Status(ctx context.Context, env Env) []StatusRow
}

// Pruner applies the cluster's retention to one region.
type Pruner interface {
	Prune(ctx context.Context, env Env, r *storage.Region, dryRun bool) (Output, error)
}

// Shipper is drd's log shipper of one cluster.
type Shipper interface {
	binlog.Shipper
	lifecycle.Component
}

// Shipping builds drd's log shipper into regions (all of drd's regions; the
// engine ships to the cluster's ship_to ones).
type Shipping interface {
	NewShipper(cl config.Cluster, regions []*storage.Region, log *slog.Logger) Shipper
}

// Scheduling gives drd's backup scheduler the engine's backups and retention
// over the cluster's ship_to regions.
type Scheduling interface {
	BackupEngine(cl config.Cluster, regions []*storage.Region, log *slog.Logger) snapshots.Engine
}

// Monitoring builds drd's probes of the primary and replicas and, when beat
// is set, the heartbeat writer.
type Monitoring interface {
	Probes(cl config.Cluster, beat bool, primary monitor.Server, replicas []monitor.Server) (monitor.Prober, monitor.Heartbeater, error)
}

// Passwords puts a password into the engine's DSNs, for flags that take it
// from a file or the environment rather than the command line.
type Passwords interface {
	// PasswordEnv is the environment variable the engine's own tools read
	// (PGPASSWORD, MYSQL_PWD, REDISCLI_AUTH).
	PasswordEnv() string
	// WithPassword returns dsn with password pw, unless it carries one.
	WithPassword(dsn, pw string) (string, error)
}

// ErrLogNotFound is wrapped by FetchLog when the region has no such log file:
// for restore_command, the normal end of recovery. Every other error must
// abort recovery instead.
var ErrLogNotFound = errors.New("no such log file")

// Archiving serves the database's own archive and restore commands
// (PostgreSQL's archive_command and restore_command: drctl wal-push and
// wal-fetch).
type Archiving interface {
	// FetchLog writes log file name from region r to dest, fetching up to
	// prefetch following files ahead.
	FetchLog(ctx context.Context, env Env, r *storage.Region, name, dest string, prefetch int) error
	// PushLog stores the log file at path in region r.
	PushLog(ctx context.Context, env Env, r *storage.Region, path string) error
}

// ReplicaRequest is one replica to create in Region (nil when its store
// could not be opened) and register in Catalog.
type ReplicaRequest struct {
	Name    string
	Region  *storage.Region
	DSN     string
	Catalog *replication.Catalog
	// Flags are the engine-specific flags given, as RestoreRequest.Flags.
	Flags map[string]string
}

// ReplicaCreator sets up a cross-region replica.
type ReplicaCreator interface {
	// ReplicaFlags names the engine-specific replica create flags it takes.
	ReplicaFlags() []string
	CreateReplica(ctx context.Context, env Env, req ReplicaRequest) (any, error)
}

// PromoteRequest is one promotion of Replica; Region is its region's store
// (nil when it could not be opened).
type PromoteRequest struct {
	PrimaryDSN string
	Replica    config.Replica
	Region     *storage.Region
	Force      bool
	Wait       time.Duration
}

// SyncChecker compares a replica's data with its primary's, chunk by chunk
// (drctl replica check, drd's sync_check). opts is a replication.Checker
// without its sides: chunk size, wait and log; the engine leaves its own
// heartbeat out.
type SyncChecker interface {
	SyncCheck(ctx context.Context, cl config.Cluster, primaryDSN string, r config.Replica, opts replication.Checker) (replication.Report, error)
}

// Promoter makes a replica the primary.
type Promoter interface {
	// PromoteNeedsStore reports whether the promotion checks the region's
	// store for log the replica lacks (and so refuses without it).
	PromoteNeedsStore() bool
	Promote(ctx context.Context, env Env, req PromoteRequest) (replication.PromoteResult, error)
}

// Driller lets drctl drill restore the cluster into a throwaway server
// (internal/drill): the engine's Restore aimed at a Sandbox, then the newest
// time the restored data holds.
type Driller interface {
	// Sandbox starts a throwaway target in dir, a new folder the drill
	// removes afterwards. Processes it starts are recorded with record, so
	// that a drill killed midway leaves none behind after the next one.
	Sandbox(ctx context.Context, env Env, dir string, record func(pid int) error) (Sandbox, error)
}

// Sandbox is one drill's throwaway server.
type Sandbox interface {
	// RestoreFlags aim the engine's Restore at the sandbox.
	RestoreFlags() map[string]string
	// Start makes the restored data usable (nothing more for engines that
	// restore into a running server).
	Start(ctx context.Context) error
	// Newest returns the newest heartbeat (or commit) time the restored data
	// holds and what it is; ok is false when it holds none.
	Newest(ctx context.Context) (t time.Time, source string, ok bool, err error)
	// Close stops the sandbox's processes.
	Close() error
}

// TargetDriller drills into a server the config names (clusters[].drill.target)
// rather than one the drill starts.
type TargetDriller interface {
	// DrillTarget connects to the server at dsn; it refuses the cluster's
	// primary and replicas (RefuseProduction).
	DrillTarget(ctx context.Context, env Env, dsn string) (DrillTarget, error)
}

// DrillTarget is a Sandbox on a server kept for drills: the drill restores
// into it only when CheckEmpty passes, and Clear empties it afterwards.
// Close disconnects (it stops nothing).
type DrillTarget interface {
	Sandbox
	// CheckEmpty returns nil when the server holds no data of its own, else
	// an error naming what it holds.
	CheckEmpty(ctx context.Context) error
	// Clear drops every database (keys) but the server's system ones.
	Clear(ctx context.Context) error
}

// RefuseProduction refuses a drill target at the address of the cluster's
// primary or of one of its replicas: a drill never touches those. addr
// gives a DSN's host:port.
func RefuseProduction(cl config.Cluster, target string, addr func(dsn string) (string, error)) error {
	t, err := addr(target)
	if err != nil {
		return fmt.Errorf("cluster %s: drill.target: %w", cl.Name, err)
	}
	prod := map[string]string{cl.DSN: "its primary (dsn)"}
	for _, r := range cl.Replicas {
		prod[r.DSN] = "its replica " + r.Name
	}
	for dsn, what := range prod {
		if a, err := addr(dsn); err == nil && sameServer(a, t) {
			return fmt.Errorf("cluster %s: drill.target %s is %s: a drill restores only into a server kept for drills", cl.Name, t, what)
		}
	}
	return nil
}

// sameServer reports whether host:port a and b are one server: the same
// port and a host name or address in common (localhost is 127.0.0.1).
func sameServer(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(a, b)
	}
	if pa != pb {
		return false
	}
	ips := func(h string) []string {
		out := []string{strings.ToLower(h)}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if addrs, err := net.DefaultResolver.LookupHost(ctx, h); err == nil {
			out = append(out, addrs...)
		}
		return out
	}
	ia := ips(ha)
	for _, h := range ips(hb) {
		if slices.Contains(ia, h) {
			return true
		}
	}
	return false
}

// BaseVerifier is a Sandbox that can check the restored base's files
// against the backup's own manifest before the server first starts
// (PostgreSQL: pg_verifybackup); a drill runs it as the phase "verify base".
type BaseVerifier interface {
	VerifyBase(ctx context.Context) error
}

// LogFetcher is a Sandbox whose server fetched the log itself, in processes
// of its own (PostgreSQL's restore_command runs drctl wal-fetch): the bytes
// they read and how long replay waited on them, for the drill's bytes
// fetched and its "fetch log" phase.
type LogFetcher interface {
	LogFetched() (bytes int64, wait time.Duration, err error)
}

// DeepChecker is a Sandbox with a slower check of the whole restored data
// (drctl drill --deep-check; PostgreSQL: pg_amcheck --heapallindexed).
type DeepChecker interface {
	DeepCheck(ctx context.Context) error
}
