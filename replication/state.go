package replication

import "github.com/drkit/drkit/monitor"

// Lifecycle states of a replica, as status, metrics and the API show them.
const (
	StateCreating   = "creating"    // drctl replica create is loading it
	StateCatchingUp = "catching_up" // replicating, but further behind than CatchUpLagSeconds
	StateStreaming  = "streaming"   // replicating and close behind
	StateBroken     = "broken"      // unreachable, not replicating, or diverged
)

// CatchUpLagSeconds is the lag above which a replica counts as catching up.
const CatchUpLagSeconds = 30

// State is a replica's lifecycle state from its catalog record (nil when
// only the config lists it) and its latest probe (nil before the first).
// A from-store replica has no link to a primary by design; it is streaming
// while its lag is small.
func State(rec *Record, probe *monitor.ServerState) string {
	if rec != nil && rec.Status == RecordCreating {
		return StateCreating
	}
	if probe == nil || !probe.Up || !probe.InSync {
		return StateBroken
	}
	fromStore := rec != nil && rec.Mode == "from-store"
	if !probe.LinkUp && !fromStore {
		return StateBroken
	}
	if probe.LagSeconds == nil || *probe.LagSeconds > CatchUpLagSeconds {
		return StateCatchingUp
	}
	return StateStreaming
}
