// Package redis registers the Redis engine: drd captures the replication
// stream into every region and takes RDB base backups (binlog/redis),
// drctl restores, verifies and prunes them (snapshots/redis), watches
// replicas (monitor/redis) and sets them up (replication/redis).
//
// Imports internal/engine and the engine's packages.
package redis

import (
	"context"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/monitor"
	rdmon "github.com/drkit/drkit/monitor/redis"
	"github.com/drkit/drkit/replication"
	rdrepl "github.com/drkit/drkit/replication/redis"
)

// Name is the engine's name in the config.
const Name = "redis"

// Engine is the Redis engine.
type Engine struct{}

func init() { engine.Register(Engine{}) }

// Name implements engine.Engine.
func (Engine) Name() string { return Name }

var (
	_ engine.Monitoring     = Engine{}
	_ engine.Passwords      = Engine{}
	_ engine.ReplicaCreator = Engine{}
	_ engine.Promoter       = Engine{}
)

// ReplicaFlags implements engine.ReplicaCreator.
func (Engine) ReplicaFlags() []string { return []string{"force"} }

// CreateReplica implements engine.ReplicaCreator: REPLICAOF the primary,
// after a check of its backlog and buffers (--force skips it).
func (e Engine) CreateReplica(ctx context.Context, env engine.Env, req engine.ReplicaRequest) (any, error) {
	if err := engine.CheckFlags(Name, req.Flags, e.ReplicaFlags()); err != nil {
		return nil, err
	}
	return rdrepl.Create(ctx, rdrepl.CreateOptions{Cluster: env.Cluster, Name: req.Name, Region: req.Region.Name, DSN: req.DSN,
		Catalog: req.Catalog, Force: req.Flags["force"] == "true", Log: env.Log})
}

// PromoteNeedsStore implements engine.Promoter: a Redis replica is promoted
// from what it holds (REPLICAOF NO ONE); the stored stream is for restores.
func (Engine) PromoteNeedsStore() bool { return false }

// Promote implements engine.Promoter.
func (Engine) Promote(ctx context.Context, env engine.Env, req engine.PromoteRequest) (replication.PromoteResult, error) {
	return rdrepl.Promote(ctx, rdrepl.PromoteOptions{Cluster: env.Cluster.Name, PrimaryDSN: req.PrimaryDSN, Replica: req.Replica, Wait: req.Wait, Log: env.Log})
}

// Probes implements engine.Monitoring.
func (Engine) Probes(cl config.Cluster, beat bool, primary monitor.Server, replicas []monitor.Server) (monitor.Prober, monitor.Heartbeater, error) {
	key := ""
	if beat {
		key = heartbeatKey(cl)
	}
	p, err := rdmon.NewProber(key, primary, replicas)
	if err != nil || !beat {
		return p, nil, err
	}
	h, err := rdmon.NewHeartbeat(key, cl.HeartbeatDSN())
	return p, h, err
}

// PasswordEnv implements engine.Passwords.
func (Engine) PasswordEnv() string { return "REDISCLI_AUTH" }

// WithPassword implements engine.Passwords for redis:// URLs.
func (Engine) WithPassword(dsn, pw string) (string, error) { return engine.URLPassword(dsn, pw) }
