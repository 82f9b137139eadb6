package mongodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/replication"
)

// CreateOptions say which replica to make.
type CreateOptions struct {
	Cluster config.Cluster
	Name    string
	// Region is where the replica runs.
	Region string
	// DSN reaches the new member: a mongod started with --replSet and the
	// primary's replica set name, not yet initiated, holding no data. Its
	// host:port is the member's address in the replica set config, so the
	// primary must reach it by that name.
	DSN     string
	Catalog *replication.Catalog
	// Wait bounds the wait for the member's initial sync (default 1h).
	Wait time.Duration
	Log  *slog.Logger
}

// CreateResult says what Create did.
type CreateResult struct {
	Record replication.Record `json:"replica"`
	// Existing is whether the server was a member already.
	Existing bool `json:"existing"`
	// Member is the member as added to the replica set config (zero when
	// it was a member already).
	Member Member `json:"member,omitzero"`
}

// Create adds the server at o.DSN to the cluster's replica set as a member
// that neither votes nor can be elected (priority 0, votes 0): a
// cross-region disaster-recovery copy must not change the primary region's
// elections or write majority; promote it deliberately. MongoDB then copies
// the data (initial sync) and applies the oplog. Running it again on a
// member only waits for it. Every refusal comes before the config changes.
//
// Real MongoDB only: FerretDB and a standalone mongod have no replica set,
// and are refused. It has not run against a real server here (see the
// README); addMember, which writes the new config, is unit-tested.
func Create(ctx context.Context, o CreateOptions) (CreateResult, error) {
	if err := replication.CheckName(o.Name); err != nil {
		return CreateResult{}, err
	}
	o.Wait = cmpOr(o.Wait, time.Hour)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	host, err := memberHost(o.DSN)
	if err != nil {
		return CreateResult{}, err
	}
	prim, err := open(ctx, "primary", o.Cluster.DSN)
	if err != nil {
		return CreateResult{}, err
	}
	defer prim.Close()
	if prim.setName == "" {
		return CreateResult{}, fmt.Errorf("cluster %s's primary is not a replica set member (a standalone mongod, or FerretDB): a MongoDB replica is a member of the primary's replica set; nothing was changed", o.Cluster.Name)
	}
	rep, err := open(ctx, "replica", o.DSN)
	if err != nil {
		return CreateResult{}, fmt.Errorf("%w; nothing was changed", err)
	}
	defer rep.Close()
	rec := replication.Record{Cluster: o.Cluster.Name, Name: o.Name, Engine: "mongodb", Region: o.Region, DSN: o.DSN,
		Mode: "stream", Status: replication.RecordCreating, Created: time.Now().UTC()}
	cfg, err := replSetConfig(ctx, prim.c)
	if err != nil {
		return CreateResult{}, err
	}
	member, err := cfg.hasMember(host)
	if err != nil {
		return CreateResult{}, err
	}
	if member {
		if err := waitSecondary(ctx, prim.c, host, o.Wait, o.Log); err != nil {
			return CreateResult{}, err
		}
		rec.Status = replication.RecordReady
		return CreateResult{Record: rec, Existing: true}, o.Catalog.Put(ctx, rec)
	}
	if err := checkNewMember(ctx, rep, prim.setName); err != nil {
		return CreateResult{}, err
	}
	next, m, err := addMember(cfg, host, o.Region)
	if err != nil {
		return CreateResult{}, err
	}
	if err := o.Catalog.Put(ctx, rec); err != nil {
		return CreateResult{}, fmt.Errorf("register replica %s: %w", o.Name, err)
	}
	o.Log.Info("adding a member to the replica set", "set", prim.setName, "host", host, "member_id", m.ID)
	if err := prim.c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetReconfig", Value: next}}).Err(); err != nil {
		return CreateResult{}, o.Catalog.Failed(ctx, rec, fmt.Errorf("replSetReconfig: %w", err))
	}
	if err := waitSecondary(ctx, prim.c, host, o.Wait, o.Log); err != nil {
		return CreateResult{}, o.Catalog.Failed(ctx, rec, err)
	}
	rec.Status = replication.RecordReady
	return CreateResult{Record: rec, Member: m}, o.Catalog.Put(ctx, rec)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// memberHost is the replica DSN's one host:port.
func memberHost(dsn string) (string, error) {
	cs, err := connstring.ParseAndValidate(dsn)
	if err != nil {
		return "", fmt.Errorf("replica dsn: not a MongoDB URL: %w", err)
	}
	if len(cs.Hosts) != 1 || cs.Scheme != connstring.SchemeMongoDB {
		return "", fmt.Errorf("replica dsn: give the new member's one host (mongodb://host:27017/), not %d hosts or an SRV name", len(cs.Hosts))
	}
	host := cs.Hosts[0]
	if !strings.Contains(host, ":") {
		host += ":27017"
	}
	return host, nil
}

// Member is the member Create adds.
type Member struct {
	ID       int               `json:"id"`
	Host     string            `json:"host"`
	Priority float64           `json:"priority"`
	Votes    int               `json:"votes"`
	Tags     map[string]string `json:"tags,omitempty"`
}

// ReplSetConfig is a replica set config as replSetGetConfig returns it,
// kept as the document it is: a reconfig sends back every field drkit
// does not change, in its order and type.
type ReplSetConfig bson.D

func (c ReplSetConfig) get(key string) any {
	for _, e := range c {
		if e.Key == key {
			return e.Value
		}
	}
	return nil
}

// members returns each member's _id and host.
func (c ReplSetConfig) members() (ids []int, hosts []string, err error) {
	list, ok := c.get("members").(bson.A)
	if !ok {
		return nil, nil, errors.New("the replica set config has no members array")
	}
	for _, m := range list {
		d, ok := m.(bson.D)
		if !ok {
			return nil, nil, errors.New("a member of the replica set config is not a document")
		}
		id, ok := asInt(ReplSetConfig(d).get("_id"))
		host, _ := ReplSetConfig(d).get("host").(string)
		if !ok || host == "" {
			return nil, nil, errors.New("a member of the replica set config has no _id or host")
		}
		ids, hosts = append(ids, id), append(hosts, host)
	}
	return ids, hosts, nil
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}

// hasMember reports whether host is a member.
func (c ReplSetConfig) hasMember(host string) (bool, error) {
	_, hosts, err := c.members()
	return slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, host) }), err
}

func replSetConfig(ctx context.Context, c *mongo.Client) (ReplSetConfig, error) {
	var out struct {
		Config bson.D `bson:"config"`
	}
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Decode(&out); err != nil {
		return nil, fmt.Errorf("primary: replSetGetConfig: %w (the user needs the clusterManager role)", err)
	}
	return ReplSetConfig(out.Config), nil
}

// maxMembers is MongoDB's limit on a replica set's members.
const maxMembers = 50

// addMember returns cfg with host added as a member that neither votes nor
// can be elected, tagged with its region, and the config version bumped;
// cfg itself is not changed.
func addMember(cfg ReplSetConfig, host, region string) (ReplSetConfig, Member, error) {
	ids, hosts, err := cfg.members()
	if err != nil {
		return nil, Member{}, err
	}
	set, _ := cfg.get("_id").(string)
	if slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, host) }) {
		return nil, Member{}, fmt.Errorf("%s is a member of replica set %s already", host, set)
	}
	if len(ids) >= maxMembers {
		return nil, Member{}, fmt.Errorf("replica set %s has %d members, MongoDB's limit", set, maxMembers)
	}
	// The lowest _id not taken: MongoDB allows 0 to 255.
	m := Member{Host: host, Tags: map[string]string{"drkit_region": region}}
	for slices.Contains(ids, m.ID) {
		m.ID++
	}
	doc := bson.D{{Key: "_id", Value: int32(m.ID)}, {Key: "host", Value: host}, {Key: "priority", Value: float64(0)},
		{Key: "votes", Value: int32(0)}, {Key: "tags", Value: bson.D{{Key: "drkit_region", Value: region}}}}
	next := slices.Clone(cfg)
	bumped := false
	for i, e := range next {
		switch e.Key {
		case "members":
			next[i].Value = append(slices.Clone(e.Value.(bson.A)), doc)
		case "version":
			switch v := e.Value.(type) {
			case int32:
				next[i].Value, bumped = v+1, true
			case int64:
				next[i].Value, bumped = v+1, true
			}
		}
	}
	if !bumped {
		return nil, Member{}, errors.New("the replica set config (replSetGetConfig) has no integer version: nothing was changed; add the member with rs.add() in mongosh")
	}
	return next, m, nil
}

// checkNewMember refuses a server that is not a mongod waiting to join
// replica set setName, or that holds data (an initial sync drops it).
func checkNewMember(ctx context.Context, rep *Side, setName string) error {
	var h struct {
		SetName      string `bson:"setName"`
		IsReplicaSet bool   `bson:"isreplicaset"`
	}
	if err := rep.c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h); err != nil {
		return fmt.Errorf("replica: hello: %w", err)
	}
	switch {
	case h.SetName != "" && h.SetName != setName:
		return fmt.Errorf("the replica is a member of replica set %s, not %s; nothing was changed", h.SetName, setName)
	case h.SetName == "" && !h.IsReplicaSet:
		return fmt.Errorf("the replica runs without --replSet: start it with --replSet %s (and no data), then run this again; nothing was changed", setName)
	}
	dbs, err := rep.c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("replica: list databases: %w", err)
	}
	dbs = slices.DeleteFunc(dbs, func(db string) bool { return systemDBs[db] })
	if len(dbs) > 0 {
		return fmt.Errorf("the replica holds databases %s, which its initial sync would drop; give an empty server; nothing was changed", strings.Join(dbs, ", "))
	}
	return nil
}

// waitSecondary waits until the member at host is SECONDARY, logging its
// state while it syncs.
func waitSecondary(ctx context.Context, prim *mongo.Client, host string, wait time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(wait)
	lastLog := time.Time{}
	for {
		var st struct {
			Members []struct {
				Name     string `bson:"name"`
				StateStr string `bson:"stateStr"`
			} `bson:"members"`
		}
		if err := prim.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetStatus", Value: 1}}).Decode(&st); err != nil {
			return fmt.Errorf("primary: replSetGetStatus: %w", err)
		}
		state := "not listed"
		for _, m := range st.Members {
			if strings.EqualFold(m.Name, host) {
				state = m.StateStr
			}
		}
		if state == "SECONDARY" {
			return nil
		}
		if time.Since(lastLog) >= 10*time.Second {
			log.Info("waiting for the new member's initial sync", "host", host, "state", state)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("member %s is %s after %s, not SECONDARY: see its mongod log (initial sync); it stays in the replica set config", host, state, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
