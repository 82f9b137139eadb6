package binlog

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SyncMode says what a commit waits for when a cluster runs in zero-RPO mode
// (clusters[].sync.mode).
type SyncMode string

const (
	// SyncOff: commits never wait for drd; a disaster loses up to the
	// flush interval.
	SyncOff SyncMode = "off"
	// SyncRemoteWrite: a commit returns once every sync region's store has
	// accepted its log. A file:// region skips the fsync of these small
	// writes (the page cache has them; a crash of that host's kernel may lose
	// them), an object store's acknowledgement is durable already.
	SyncRemoteWrite SyncMode = "remote_write"
	// SyncRemoteDurable: a commit returns once every sync region holds its
	// log durably (file:// fsynced).
	SyncRemoteDurable SyncMode = "remote_durable"
)

// SyncModes are the modes a config may name.
var SyncModes = []SyncMode{SyncOff, SyncRemoteWrite, SyncRemoteDurable}

// Sync is a shipper's zero-RPO policy: in a mode other than off, drd ships
// log as soon as it arrives (group commit: what arrives while a write is in
// flight goes in the next one, no timer) and tells the server a position is
// safe only once every region in Regions holds it, so the server's
// synchronous replication holds each commit until then.
type Sync struct {
	Mode    SyncMode
	Regions []string
	// Timeout is how long log may wait for the sync regions before drd
	// reports the cluster stalled (drkit_sync_stalled, an ERROR log).
	Timeout time.Duration
}

// On reports whether commits wait for regions.
func (s Sync) On() bool { return s.Mode != "" && s.Mode != SyncOff }

// Includes reports whether region is one a commit waits for.
func (s Sync) Includes(region string) bool { return s.On() && slices.Contains(s.Regions, region) }

// Durable reports whether writes must be fsynced before they count (every
// mode but remote_write).
func (s Sync) Durable() bool { return s.Mode != SyncRemoteWrite }

// SyncState is how long log received has waited for the sync regions, which
// in zero-RPO mode is how long the server's commits have waited on drd.
// Embedding it implements Syncer.
type SyncState struct {
	mu      sync.Mutex
	policy  Sync
	since   time.Time // when the oldest log not yet in every sync region arrived
	stalled bool
}

// Syncer is a shipper that may hold its server's commits (zero-RPO mode).
type Syncer interface {
	SyncStatus(now time.Time) (mode SyncMode, waiting time.Duration, stalled bool)
}

// SetSyncPolicy records the policy the status reports against.
func (s *SyncState) SetSyncPolicy(p Sync) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = p
}

// SyncPending records that log arrived at now which the sync regions do not
// hold yet; the wait counts from the first such arrival.
func (s *SyncState) SyncPending(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() {
		s.since = now
	}
}

// SyncCaughtUp records that the sync regions hold everything received.
// It returns true when the cluster had been reported stalled, for the caller
// to log the recovery once.
func (s *SyncState) SyncCaughtUp() (wasStalled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.since = time.Time{}
	wasStalled, s.stalled = s.stalled, false
	return wasStalled
}

// SyncStall reports whether the wait has passed the policy's timeout, and
// newly is true the first time it does (log once, not every check).
func (s *SyncState) SyncStall(now time.Time) (stalled, newly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.policy.On() || s.since.IsZero() || now.Sub(s.since) < s.policy.Timeout {
		return false, false
	}
	newly, s.stalled = !s.stalled, true
	return true, newly
}

// SyncStatus implements Syncer.
func (s *SyncState) SyncStatus(now time.Time) (SyncMode, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mode := s.policy.Mode
	if mode == "" {
		mode = SyncOff
	}
	if !s.policy.On() || s.since.IsZero() {
		return mode, 0, false
	}
	w := now.Sub(s.since)
	return mode, w, w >= s.policy.Timeout
}

var (
	syncModeDesc = prometheus.NewDesc("drkit_sync_mode",
		"1 for the cluster's zero-RPO mode (off, remote_write, remote_durable).", []string{"cluster", "mode"}, nil)
	syncWaitDesc = prometheus.NewDesc("drkit_sync_wait_seconds",
		"How long the oldest log drd received has waited for the sync regions: in zero-RPO mode, how long the server's commits have waited on drd.", []string{"cluster"}, nil)
	syncStalledDesc = prometheus.NewDesc("drkit_sync_stalled",
		"1 while log has waited for the sync regions longer than sync.timeout: commits wait (PostgreSQL) or the server fell back to asynchronous (MariaDB).", []string{"cluster"}, nil)
)

func collectSync(ch chan<- prometheus.Metric, cluster string, s Syncer, now time.Time) {
	mode, wait, stalled := s.SyncStatus(now)
	ch <- prometheus.MustNewConstMetric(syncModeDesc, prometheus.GaugeValue, 1, cluster, string(mode))
	ch <- prometheus.MustNewConstMetric(syncWaitDesc, prometheus.GaugeValue, wait.Seconds(), cluster)
	v := 0.0
	if stalled {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(syncStalledDesc, prometheus.GaugeValue, v, cluster)
}
