package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/monitor"
)

// Server is one server to probe.
type Server = monitor.Server

// heartbeatDB holds the heartbeat collection.
const heartbeatDB = "drkit"

// Prober probes a MongoDB primary and its replicas over a client each.
type Prober struct {
	cluster, table string
	primary        Server
	replicas       []Server
	clients        map[string]*mongo.Client
}

// NewProber returns a prober; it connects lazily. table is the heartbeat
// collection ("" when the heartbeat is off).
func NewProber(cluster, table string, primary Server, replicas []Server) (*Prober, error) {
	p := &Prober{cluster: cluster, table: table, primary: primary, replicas: replicas, clients: map[string]*mongo.Client{}}
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

// open returns a client of the one server at dsn (a direct connection:
// probing a replica must not be routed to the primary), with timeouts.
func open(dsn string) (*mongo.Client, error) {
	o := options.Client().ApplyURI(dsn).SetServerSelectionTimeout(5 * time.Second).SetTimeout(5 * time.Second).SetReadPreference(readpref.Nearest())
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("mongodb url %s: %w", config.RedactDSN(dsn), err)
	}
	if len(o.Hosts) == 1 {
		o.SetDirect(true)
	}
	return mongo.Connect(o)
}

// Close implements monitor.Prober.
func (p *Prober) Close() {
	for _, c := range p.clients {
		_ = c.Disconnect(context.Background())
	}
}

// hello is what a server says of itself.
type hello struct {
	IsWritablePrimary bool   `bson:"isWritablePrimary"`
	Secondary         bool   `bson:"secondary"`
	SetName           string `bson:"setName"`
	LastWrite         struct {
		LastWriteDate time.Time `bson:"lastWriteDate"`
	} `bson:"lastWrite"`
}

func getHello(ctx context.Context, c *mongo.Client) (hello, error) {
	var h hello
	err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h)
	return h, err
}

// primaryFacts is what the primary says.
type primaryFacts struct {
	hello     hello
	heartbeat *time.Time
}

// Probe implements monitor.Prober.
func (p *Prober) Probe(ctx context.Context) []monitor.ServerState {
	return monitor.ProbeCluster(ctx, p.primary, p.replicas, p.probePrimary, p.probeReplica)
}

func (p *Prober) probePrimary(ctx context.Context) (*primaryFacts, error) {
	c := p.clients[""]
	h, err := getHello(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("probe primary: %w", err)
	}
	if !h.IsWritablePrimary {
		return nil, errors.New("probe primary: the server is not a writable primary (a secondary, or no primary elected): drctl promote, or fix the cluster's dsn")
	}
	pf := &primaryFacts{hello: h}
	if pf.heartbeat, err = p.readHeartbeat(ctx, c); err != nil {
		return nil, fmt.Errorf("probe primary: %w", err)
	}
	return pf, nil
}

func (p *Prober) probeReplica(ctx context.Context, s Server, pf *primaryFacts) monitor.ServerState {
	st := monitor.ServerState{Replica: s.Name, Region: s.Region}
	c := p.clients[s.Name]
	h, err := getHello(ctx, c)
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
	if !h.Secondary {
		st.Error = "not a secondary of a replica set: hello says neither secondary nor a set member"
		if h.IsWritablePrimary {
			st.Error = "not a replica: the server is a writable primary itself"
		}
		return st
	}
	st.LinkUp, st.Applying = true, true
	if pf == nil {
		st.Error = "primary unreachable: lag and sync state unknown"
		return st
	}
	if h.SetName != pf.hello.SetName {
		st.Error = fmt.Sprintf("a member of replica set %q, the primary's is %q", h.SetName, pf.hello.SetName)
		return st
	}
	st.InSync = true
	if s, ok := monitor.HeartbeatLag(time.Now(), pf.heartbeat, hb); ok {
		st.LagSeconds, st.LagSource = monitor.Float(s), "heartbeat"
	} else if !pf.hello.LastWrite.LastWriteDate.IsZero() && !h.LastWrite.LastWriteDate.IsZero() {
		st.LagSeconds, st.LagSource = monitor.Float(max(0, pf.hello.LastWrite.LastWriteDate.Sub(h.LastWrite.LastWriteDate).Seconds())), "engine"
	}
	return st
}

// readHeartbeat returns the cluster's heartbeat, or nil when there is none.
func (p *Prober) readHeartbeat(ctx context.Context, c *mongo.Client) (*time.Time, error) {
	if p.table == "" {
		return nil, nil
	}
	var doc struct {
		At time.Time `bson:"at"`
	}
	err := c.Database(heartbeatDB).Collection(p.table).FindOne(ctx, bson.D{{Key: "_id", Value: p.cluster}}).Decode(&doc)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read heartbeat %s.%s: %w", heartbeatDB, p.table, err)
	}
	return &doc.At, nil
}

// Heartbeat writes the cluster's heartbeat document on the primary.
type Heartbeat struct {
	cluster string
	coll    *mongo.Collection
	c       *mongo.Client
}

// NewHeartbeat returns a writer of the heartbeat in collection table over
// the mongodb:// URL dsn; it connects lazily.
func NewHeartbeat(cluster, table, dsn string) (*Heartbeat, error) {
	c, err := open(dsn)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return &Heartbeat{cluster: cluster, coll: c.Database(heartbeatDB).Collection(table), c: c}, nil
}

// Beat implements monitor.Heartbeater.
func (h *Heartbeat) Beat(ctx context.Context, at time.Time) error {
	_, err := h.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: h.cluster}}, bson.D{{Key: "at", Value: at}}, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("write heartbeat %s.%s: %w", heartbeatDB, h.coll.Name(), err)
	}
	return nil
}

// Close implements monitor.Heartbeater.
func (h *Heartbeat) Close() { _ = h.c.Disconnect(context.Background()) }
