package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drkit/drkit/monitor"
)

// Server is one server to probe.
type Server = monitor.Server

// Prober probes a primary and its standbys. It keeps one small connection pool
// per server, which reconnects by itself after the server comes back.
type Prober struct {
	cluster, table string
	primary        Server
	replicas       []Server
	pools          map[string]*pgxpool.Pool
}

// NewProber returns a prober; it connects lazily, at the first probe. table
// is the heartbeat table ("" when the heartbeat is off).
func NewProber(cluster, table string, primary Server, replicas []Server) (*Prober, error) {
	p := &Prober{cluster: cluster, table: table, primary: primary, replicas: replicas, pools: map[string]*pgxpool.Pool{}}
	for _, s := range append([]Server{primary}, replicas...) {
		cfg, err := pgxpool.ParseConfig(s.DSN)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("%s: parse dsn: %w", s.String(), err)
		}
		cfg.MaxConns = 1
		cfg.ConnConfig.RuntimeParams["application_name"] = "drkit-probe"
		delete(cfg.ConnConfig.RuntimeParams, "replication")
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("%s: %w", s.String(), err)
		}
		p.pools[s.Name] = pool
	}
	return p, nil
}

// Close implements monitor.Prober.
func (p *Prober) Close() {
	for _, pool := range p.pools {
		pool.Close()
	}
}

// primaryFacts is what the primary says.
type primaryFacts struct {
	lsn       pglogrepl.LSN
	timeline  int64
	sysid     string
	heartbeat *time.Time
}

// Probe implements monitor.Prober.
func (p *Prober) Probe(ctx context.Context) []monitor.ServerState {
	return monitor.ProbeCluster(ctx, p.primary, p.replicas, p.probePrimary, p.probeReplica)
}

func (p *Prober) probePrimary(ctx context.Context) (*primaryFacts, error) {
	pool := p.pools[""]
	var (
		inRecovery bool
		lsn, wal   string
		pf         primaryFacts
	)
	err := pool.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text,
		CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_walfile_name(pg_current_wal_lsn()) END,
		(SELECT system_identifier FROM pg_control_system())::text`).Scan(&inRecovery, &lsn, &wal, &pf.sysid)
	if err != nil {
		return nil, fmt.Errorf("probe primary: %w", err)
	}
	if inRecovery {
		return nil, errors.New("probe primary: the server is in recovery (a standby): check the cluster's dsn")
	}
	if pf.lsn, err = pglogrepl.ParseLSN(lsn); err != nil {
		return nil, fmt.Errorf("probe primary: %w", err)
	}
	if _, err := fmt.Sscanf(wal[:8], "%08X", &pf.timeline); err != nil {
		return nil, fmt.Errorf("probe primary: timeline of WAL file %q: %w", wal, err)
	}
	if pf.heartbeat, err = p.readHeartbeat(ctx, pool); err != nil {
		return nil, err
	}
	return &pf, nil
}

// readHeartbeat returns the cluster's heartbeat, or nil when there is none
// (off, or the table not created or replicated yet).
func (p *Prober) readHeartbeat(ctx context.Context, pool *pgxpool.Pool) (*time.Time, error) {
	if p.table == "" {
		return nil, nil
	}
	var us int64
	err := pool.QueryRow(ctx, "SELECT beat_us FROM "+p.table+" WHERE cluster = $1", p.cluster).Scan(&us)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read heartbeat from %s: %w", p.table, err)
	}
	t := time.UnixMicro(us)
	return &t, nil
}

// replicaFacts is what a standby says.
type replicaFacts struct {
	inRecovery, paused bool
	receive, replay    *string
	replayedAt         *float64
	sysid              string
	receiver           *string
	receivedTLI        *int64
}

func (p *Prober) probeReplica(ctx context.Context, r Server, pf *primaryFacts) monitor.ServerState {
	st := monitor.ServerState{Replica: r.Name, Region: r.Region}
	pool := p.pools[r.Name]
	var f replicaFacts
	err := pool.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
		pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
		extract(epoch FROM pg_last_xact_replay_timestamp())::float8,
		(SELECT system_identifier FROM pg_control_system())::text,
		(SELECT status FROM pg_stat_wal_receiver), (SELECT received_tli::int8 FROM pg_stat_wal_receiver)`).
		Scan(&f.inRecovery, &f.paused, &f.receive, &f.replay, &f.replayedAt, &f.sysid, &f.receiver, &f.receivedTLI)
	if err != nil {
		st.Error = fmt.Sprintf("probe replica %s: %v", r.Name, err)
		return st
	}
	hb, err := p.readHeartbeat(ctx, pool)
	if err != nil {
		st.Error = fmt.Sprintf("probe replica %s: %v", r.Name, err)
		return st
	}
	st.Up = true
	st.LinkUp = f.receiver != nil && *f.receiver == "streaming"
	st.Applying = f.inRecovery && !f.paused
	if pf == nil {
		// Without the primary's facts nothing can be compared: the
		// replica is reachable, its lag and sync state are unknown.
		st.Error = "primary unreachable: lag and sync state unknown"
		return st
	}
	st.InSync, st.Error = inSync(f, pf)
	lag(&st, f, pf, hb)
	return st
}

// inSync says whether the standby follows this primary and can converge.
func inSync(f replicaFacts, pf *primaryFacts) (bool, string) {
	switch {
	case !f.inRecovery:
		return false, "not in recovery: the replica was promoted and takes writes of its own"
	case f.sysid != pf.sysid:
		return false, fmt.Sprintf("system identifier %s differs from the primary's %s: a different cluster", f.sysid, pf.sysid)
	case f.receivedTLI != nil && *f.receivedTLI != pf.timeline:
		return false, fmt.Sprintf("receives timeline %d, the primary is on timeline %d", *f.receivedTLI, pf.timeline)
	}
	return true, ""
}

func lag(st *monitor.ServerState, f replicaFacts, pf *primaryFacts, hb *time.Time) {
	var behind float64
	if f.replay != nil {
		if replay, err := pglogrepl.ParseLSN(*f.replay); err == nil {
			// The replica was read after the primary, so it may be ahead.
			behind = max(0, float64(pf.lsn)-float64(replay))
			st.LagBytes = monitor.Float(behind)
		}
	}
	now := time.Now()
	if s, ok := monitor.HeartbeatLag(now, pf.heartbeat, hb); ok {
		st.LagSeconds, st.LagSource = monitor.Float(s), "heartbeat"
		return
	}
	switch {
	case st.LagBytes != nil && behind == 0:
		st.LagSeconds, st.LagSource = monitor.Float(0), "engine"
	case f.replayedAt != nil:
		st.LagSeconds, st.LagSource = monitor.Float(max(0, float64(now.UnixNano())/1e9-*f.replayedAt)), "engine"
	}
}
