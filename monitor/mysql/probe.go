package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	mywal "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/monitor"
)

// Server is one server to probe.
type Server = monitor.Server

// Prober probes a MariaDB primary and its replicas over one small
// database/sql pool per server.
type Prober struct {
	cluster, table string
	primary        Server
	replicas       []Server
	dbs            map[string]*sql.DB
}

// NewProber returns a prober; it connects lazily. table is the heartbeat
// table ("" when the heartbeat is off).
func NewProber(cluster, table string, primary Server, replicas []Server) (*Prober, error) {
	p := &Prober{cluster: cluster, table: table, primary: primary, replicas: replicas, dbs: map[string]*sql.DB{}}
	for _, s := range append([]Server{primary}, replicas...) {
		db, err := open(s.DSN)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("%s: %w", s.String(), err)
		}
		p.dbs[s.Name] = db
	}
	return p, nil
}

// open returns a one-connection pool with timeouts, so a hung server fails
// the probe rather than blocking it.
func open(dsn string) (*sql.DB, error) {
	cfg, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 10*time.Second, 10*time.Second
	conn, err := mysqldriver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

// Close implements monitor.Prober.
func (p *Prober) Close() {
	for _, db := range p.dbs {
		_ = db.Close()
	}
}

// primaryFacts is what the primary says.
type primaryFacts struct {
	serverID  uint32
	pos       mywal.Pos
	file      string
	offset    uint64
	sizes     map[string]uint64 // binlog file sizes
	files     []string          // in order
	heartbeat *time.Time
}

// Probe implements monitor.Prober.
func (p *Prober) Probe(ctx context.Context) []monitor.ServerState {
	return monitor.ProbeCluster(ctx, p.primary, p.replicas, p.probePrimary, p.probeReplica)
}

func (p *Prober) probePrimary(ctx context.Context) (*primaryFacts, error) {
	db := p.dbs[""]
	pf := primaryFacts{sizes: map[string]uint64{}}
	var gtid string
	if err := db.QueryRowContext(ctx, "SELECT @@server_id, @@gtid_binlog_pos").Scan(&pf.serverID, &gtid); err != nil {
		return nil, fmt.Errorf("probe primary: %w", err)
	}
	var err error
	if pf.pos, err = mywal.ParsePos(gtid); err != nil {
		return nil, fmt.Errorf("probe primary: gtid_binlog_pos: %w", err)
	}
	rows, err := queryMaps(ctx, db, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("probe primary (needs binary logging and BINLOG MONITOR): %w", err)
	}
	for _, r := range rows {
		var size uint64
		fmt.Sscan(r["File_size"], &size)
		pf.files = append(pf.files, r["Log_name"])
		pf.sizes[r["Log_name"]] = size
	}
	if n := len(pf.files); n > 0 {
		// The last file's size is its end: the primary's position.
		pf.file, pf.offset = pf.files[n-1], pf.sizes[pf.files[n-1]]
	}
	if pf.heartbeat, err = p.readHeartbeat(ctx, db); err != nil {
		return nil, err
	}
	return &pf, nil
}

// readHeartbeat returns the cluster's heartbeat, or nil when there is none.
func (p *Prober) readHeartbeat(ctx context.Context, db *sql.DB) (*time.Time, error) {
	if p.table == "" {
		return nil, nil
	}
	var us int64
	err := db.QueryRowContext(ctx, "SELECT beat_us FROM "+p.table+" WHERE cluster = ?", p.cluster).Scan(&us)
	var myErr *mysqldriver.MySQLError
	switch {
	case errors.Is(err, sql.ErrNoRows), errors.As(err, &myErr) && (myErr.Number == 1146 || myErr.Number == 1049): // no table, no database
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read heartbeat from %s: %w", p.table, err)
	}
	t := time.UnixMicro(us)
	return &t, nil
}

func (p *Prober) probeReplica(ctx context.Context, r Server, pf *primaryFacts) monitor.ServerState {
	st := monitor.ServerState{Replica: r.Name, Region: r.Region}
	db := p.dbs[r.Name]
	var (
		serverID         uint32
		slavePos, bstate string
	)
	if err := db.QueryRowContext(ctx, "SELECT @@server_id, @@gtid_slave_pos, @@gtid_binlog_state").Scan(&serverID, &slavePos, &bstate); err != nil {
		st.Error = fmt.Sprintf("probe replica %s: %v", r.Name, err)
		return st
	}
	rows, err := queryMaps(ctx, db, "SHOW SLAVE STATUS")
	if err != nil {
		st.Error = fmt.Sprintf("probe replica %s (needs SLAVE MONITOR): %v", r.Name, err)
		return st
	}
	hb, err := p.readHeartbeat(ctx, db)
	if err != nil {
		st.Error = fmt.Sprintf("probe replica %s: %v", r.Name, err)
		return st
	}
	st.Up = true
	if len(rows) == 0 {
		st.Error = "not a replica: SHOW SLAVE STATUS is empty"
		return st
	}
	ss := rows[0]
	st.LinkUp = ss["Slave_IO_Running"] == "Yes"
	st.Applying = ss["Slave_SQL_Running"] == "Yes"
	if pf == nil {
		st.Error = "primary unreachable: lag and sync state unknown"
		return st
	}
	st.InSync, st.Error = inSync(ss, serverID, bstate, pf)
	lag(&st, ss, slavePos, pf, hb)
	return st
}

// inSync says whether the replica follows this primary and can converge.
func inSync(ss map[string]string, ownID uint32, binlogState string, pf *primaryFacts) (bool, string) {
	if n := ss["Last_SQL_Errno"]; n != "" && n != "0" {
		return false, fmt.Sprintf("SQL thread stopped on error %s: %s", n, ss["Last_SQL_Error"])
	}
	if id := ss["Master_Server_Id"]; id != "" && id != "0" && id != fmt.Sprint(pf.serverID) {
		return false, fmt.Sprintf("replicates server_id %s, the primary is server_id %d", id, pf.serverID)
	}
	if ownID != pf.serverID {
		for _, s := range strings.Split(binlogState, ",") {
			g, err := mywal.ParseGTID(strings.TrimSpace(s))
			if err == nil && g.Server == ownID {
				return false, fmt.Sprintf("holds transaction %s written on the replica itself", g)
			}
		}
	}
	return true, ""
}

func lag(st *monitor.ServerState, ss map[string]string, slavePos string, pf *primaryFacts, hb *time.Time) {
	if b, ok := lagBytes(ss, pf); ok {
		st.LagBytes = monitor.Float(b)
	}
	if rp, err := mywal.ParsePos(slavePos); err == nil {
		var n uint64
		for d, g := range pf.pos {
			if g.Seq > rp[d].Seq {
				n += g.Seq - rp[d].Seq
			}
		}
		st.LagTransactions = monitor.Float(float64(n))
	}
	if s, ok := monitor.HeartbeatLag(time.Now(), pf.heartbeat, hb); ok {
		st.LagSeconds, st.LagSource = monitor.Float(s), "heartbeat"
		return
	}
	var sbm float64
	if v := ss["Seconds_Behind_Master"]; v != "" {
		if _, err := fmt.Sscan(v, &sbm); err == nil {
			st.LagSeconds, st.LagSource = monitor.Float(sbm), "engine"
		}
	}
}

// lagBytes is the primary's binlog from the replica's executed position to
// its end, summed across files.
func lagBytes(ss map[string]string, pf *primaryFacts) (float64, bool) {
	file := ss["Relay_Master_Log_File"]
	var exec uint64
	if _, err := fmt.Sscan(ss["Exec_Master_Log_Pos"], &exec); err != nil || file == "" {
		return 0, false
	}
	var total uint64
	counting := false
	for _, f := range pf.files {
		if f == file {
			counting = true
			total += pf.sizes[f] - min(exec, pf.sizes[f])
			continue
		}
		if counting {
			total += pf.sizes[f]
		}
	}
	return float64(total), counting
}

// queryMaps runs q and returns each row as column → text (NULL is "").
func queryMaps(ctx context.Context, db *sql.DB, q string) ([]map[string]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]string, len(cols))
		for i, c := range cols {
			m[c] = vals[i].String
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
