package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/redisinfo"
	"github.com/drkit/drkit/monitor"
)

// Server is one server to probe.
type Server = monitor.Server

// Prober probes a Redis primary and its replicas over one connection each.
type Prober struct {
	key      string
	primary  Server
	replicas []Server
	clients  map[string]*goredis.Client
}

// NewProber returns a prober; it connects lazily. key is the heartbeat key
// ("" when the heartbeat is off).
func NewProber(key string, primary Server, replicas []Server) (*Prober, error) {
	p := &Prober{key: key, primary: primary, replicas: replicas, clients: map[string]*goredis.Client{}}
	for _, s := range append([]Server{primary}, replicas...) {
		c, err := open(s.DSN)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("%s: %w", s.String(), err)
		}
		p.clients[s.Name] = c
	}
	return p, nil
}

// open returns a one-connection client with timeouts, so a hung server
// fails the probe rather than blocking it.
func open(dsn string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(dsn)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", config.RedactDSN(dsn), err)
	}
	opt.PoolSize, opt.MinIdleConns, opt.MaxRetries = 1, 0, -1
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
	return goredis.NewClient(opt), nil
}

// Close implements monitor.Prober.
func (p *Prober) Close() {
	for _, c := range p.clients {
		_ = c.Close()
	}
}

// primaryFacts is what the primary says.
type primaryFacts struct {
	replID    string
	offset    int64
	heartbeat *time.Time
}

// Probe implements monitor.Prober.
func (p *Prober) Probe(ctx context.Context) []monitor.ServerState {
	return monitor.ProbeCluster(ctx, p.primary, p.replicas, p.probePrimary, p.probeReplica)
}

func (p *Prober) probePrimary(ctx context.Context) (*primaryFacts, error) {
	c := p.clients[""]
	r, err := redisinfo.Get(ctx, c, "replication")
	if err != nil {
		return nil, fmt.Errorf("probe primary: %w", err)
	}
	if r["role"] != "master" {
		return nil, fmt.Errorf("probe primary: the server is a replica of %s:%s, not a primary (drctl promote, or fix the cluster's dsn)", r["master_host"], r["master_port"])
	}
	pf := &primaryFacts{replID: r["master_replid"]}
	pf.offset, _ = strconv.ParseInt(r["master_repl_offset"], 10, 64)
	if pf.heartbeat, err = p.readHeartbeat(ctx, c); err != nil {
		return nil, fmt.Errorf("probe primary: %w", err)
	}
	return pf, nil
}

func (p *Prober) probeReplica(ctx context.Context, s Server, pf *primaryFacts) monitor.ServerState {
	st := monitor.ServerState{Replica: s.Name, Region: s.Region}
	c := p.clients[s.Name]
	r, err := redisinfo.Get(ctx, c, "replication")
	if err != nil {
		st.Error = fmt.Sprintf("probe replica %s: %v", s.Name, err)
		return st
	}
	hb, err := p.readHeartbeat(ctx, c)
	if err != nil {
		st.Error = fmt.Sprintf("probe replica %s: %v", s.Name, err)
		return st
	}
	st.Up = true
	if r["role"] != "slave" {
		st.Error = "not a replica: INFO replication says role " + r["role"]
		return st
	}
	st.LinkUp = r["master_link_status"] == "up" && r["master_sync_in_progress"] != "1"
	st.Applying = true // a Redis replica applies the stream as it reads it
	if pf == nil {
		st.Error = "primary unreachable: lag and sync state unknown"
		return st
	}
	if id := r["master_replid"]; id != pf.replID {
		st.Error = fmt.Sprintf("follows replication history %s, the primary's is %s: another primary, or the primary lost its data; a full copy is due", id, pf.replID)
		return st
	}
	st.InSync = true
	lag(&st, r, pf, hb)
	return st
}

// lag fills in the replica's lag; nothing when the replica is mid-copy
// (its offset is not yet the primary's history).
func lag(st *monitor.ServerState, r map[string]string, pf *primaryFacts, hb *time.Time) {
	if r["master_sync_in_progress"] == "1" {
		return
	}
	off, err := strconv.ParseInt(r["slave_repl_offset"], 10, 64)
	if err != nil {
		return
	}
	bytes := max(0, pf.offset-off)
	st.LagBytes = monitor.Float(float64(bytes))
	if s, ok := monitor.HeartbeatLag(time.Now(), pf.heartbeat, hb); ok {
		st.LagSeconds, st.LagSource = monitor.Float(s), "heartbeat"
	} else if bytes == 0 {
		st.LagSeconds, st.LagSource = monitor.Float(0), "engine"
	}
}

// readHeartbeat returns the cluster's heartbeat, or nil when there is none.
func (p *Prober) readHeartbeat(ctx context.Context, c *goredis.Client) (*time.Time, error) {
	if p.key == "" {
		return nil, nil
	}
	us, err := c.Get(ctx, p.key).Int64()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read heartbeat key %s: %w", p.key, err)
	}
	t := time.UnixMicro(us)
	return &t, nil
}
