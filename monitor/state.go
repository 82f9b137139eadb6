package monitor

import (
	"context"
	"time"
)

// ServerState is what one probe found on one server of a cluster.
type ServerState struct {
	// Replica names the replica; "" is the primary.
	Replica string `json:"replica,omitempty"`
	// Region is where the server runs.
	Region string `json:"region"`
	// Up is whether the probe reached the server and read its state.
	Up bool `json:"up"`
	// Error says why the server is down or a fact could not be read.
	Error string `json:"error,omitempty"`

	// The rest describe replicas only, and only when Up.

	// LinkUp is whether the replica is connected to its primary and receiving.
	LinkUp bool `json:"link_up"`
	// Applying is whether the replica replays what it receives: false when
	// replay is paused (pg_wal_replay_pause) or the SQL thread is stopped.
	// Its lag then grows without bound, whatever its size now.
	Applying bool `json:"applying"`
	// InSync is whether the replica follows this primary and can converge on
	// it: same system (timeline, server), no apply error, no transactions of
	// its own. A paused or lagging replica is still in sync.
	InSync bool `json:"in_sync"`
	// Lag facts; nil when unknown.
	LagSeconds      *float64 `json:"lag_seconds,omitempty"`
	LagBytes        *float64 `json:"lag_bytes,omitempty"`
	LagTransactions *float64 `json:"lag_transactions,omitempty"`
	// LagSource says where LagSeconds came from: "heartbeat" or "engine".
	LagSource string `json:"lag_source,omitempty"`
	// State is the replica's lifecycle state (creating, catching_up,
	// streaming, broken), when the watcher has a Lifecycle.
	State string `json:"state,omitempty"`
	// DriftChunks is how many chunks differed from the primary at the last
	// checksum comparison; nil before the first.
	DriftChunks *int `json:"drift_chunks,omitempty"`
}

// ClusterState is the result of one probe of a cluster.
type ClusterState struct {
	Cluster string        `json:"cluster"`
	Engine  string        `json:"engine"`
	At      time.Time     `json:"at"`
	Servers []ServerState `json:"servers"`
}

// Prober measures a cluster's primary and replicas. Each engine has one.
type Prober interface {
	// Probe measures every server once. It returns no error: a server it
	// cannot reach is reported with Up false and the reason.
	Probe(ctx context.Context) []ServerState
	Close()
}

// Heartbeater writes the heartbeat row on the primary.
type Heartbeater interface {
	// Beat stores at (drd's clock) as the cluster's heartbeat.
	Beat(ctx context.Context, at time.Time) error
	Close()
}

// HeartbeatLag is the lag in seconds between the heartbeat on the primary and
// the one a replica has replayed, if both are known and the primary's is
// fresh. A stale primary heartbeat (the writer failing) says nothing about
// lag, so then ok is false.
func HeartbeatLag(now time.Time, primary, replica *time.Time) (lag float64, ok bool) {
	if primary == nil || replica == nil || now.Sub(*primary) > staleHeartbeat {
		return 0, false
	}
	return max(0, primary.Sub(*replica).Seconds()), true
}

// BeatInterval is how often the heartbeat is written.
const BeatInterval = time.Second

// staleHeartbeat is how old the primary's heartbeat may be before lag stops
// being computed from it.
const staleHeartbeat = 5 * BeatInterval

// Float returns a pointer to v, for the optional lag fields.
func Float(v float64) *float64 { return &v }

// Server is one server a prober watches.
type Server struct {
	// Name is the replica's name; "" for the primary.
	Name, Region, DSN string
}

// String names the server in errors.
func (s Server) String() string {
	if s.Name == "" {
		return "primary"
	}
	return "replica " + s.Name
}

// ProbeCluster is the shape of every engine's probe: the primary first, then
// each replica compared with the primary's facts (nil when the primary could
// not be read, so the replica's lag stays unknown).
func ProbeCluster[F any](ctx context.Context, primary Server, replicas []Server,
	probePrimary func(context.Context) (*F, error), probeReplica func(context.Context, Server, *F) ServerState) []ServerState {
	out := []ServerState{{Region: primary.Region}}
	facts, err := probePrimary(ctx)
	if err != nil {
		out[0].Error = err.Error()
	} else {
		out[0].Up = true
	}
	for _, r := range replicas {
		out = append(out, probeReplica(ctx, r, facts))
	}
	return out
}
