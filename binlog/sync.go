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
// in zero-RPO mode is how long the server's commits have waited on drd: the
// age of the oldest log not yet in every sync region. Embedding it
// implements Syncer.
//
// The shipper reports log arriving (SyncPending), the log so far handed to
// the regions as one write (SyncHanded, with a mark that grows with every
// write: a position or a counter) and the writes every sync region stored
// (SyncStored). Under steady load some log always waits for the next write,
// so the age is that of the oldest write (or arrival) still waiting, not the
// time since the pipeline was last empty.
type SyncState struct {
	mu       sync.Mutex
	policy   Sync
	unhanded time.Time  // when the oldest log not handed yet arrived
	handed   []syncMark // writes not yet in every sync region, oldest first
	stalled  bool
	server   ServerSync // what the server last said (zero At: not known now)
	// seenOn: the server was seen holding commits for drd; fell: it was
	// seen not to since then. Kept across sessions, so that a fall or a
	// return is news once, whichever session's poll sees it.
	seenOn, fell bool
}

// ServerSync is the server's own view of its synchronous replication, which
// the shipper polls: drd's view (the wait above) cannot tell whether the
// server still holds commits for drd at all. A MariaDB server falls back to
// asynchronous replication by itself after rpl_semi_sync_master_timeout, and a
// PostgreSQL server whose synchronous_standby_names stops naming drd no
// longer waits for it: either way commits return that the regions may lack.
type ServerSync struct {
	At time.Time // when the server was asked
	// Synchronous: the server holds commits until drd acknowledges them
	// (PostgreSQL: drd's sync_state is sync or quorum; MariaDB:
	// Rpl_semi_sync_master_status is ON).
	Synchronous bool
	// Waiting is how many sessions' commits the server holds for
	// synchronous replication now (PostgreSQL: wait_event SyncRep;
	// MariaDB: Rpl_semi_sync_master_wait_sessions).
	Waiting int
}

type syncMark struct {
	mark  uint64
	since time.Time
}

// Syncer is a shipper that may hold its server's commits (zero-RPO mode).
type Syncer interface {
	SyncStatus(now time.Time) (mode SyncMode, waiting time.Duration, stalled bool)
	// SyncServer is what the server last said; ok is false until it was
	// asked (or with sync off).
	SyncServer() (s ServerSync, ok bool)
}

// SetSyncPolicy records the policy the status reports against.
func (s *SyncState) SetSyncPolicy(p Sync) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = p
}

// SyncPending records that log arrived at now which is not handed to the
// regions yet; the wait counts from the first such arrival.
func (s *SyncState) SyncPending(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unhanded.IsZero() {
		s.unhanded = now
	}
}

// SyncHanded records that the log pending so far went to the regions as the
// write marked mark.
func (s *SyncState) SyncHanded(mark uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.unhanded.IsZero() {
		s.handed = append(s.handed, syncMark{mark, s.unhanded})
		s.unhanded = time.Time{}
	}
}

// SyncStored records that every sync region holds the writes up to mark.
func (s *SyncState) SyncStored(mark uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < len(s.handed) && s.handed[n].mark <= mark {
		n++
	}
	s.handed = s.handed[n:]
}

// SetSyncServer records what the server said about its synchronous
// replication; a zero v clears the view (not known now: drd does not stream,
// or could not ask). It reports the news to log once: fell, the server
// stopped holding commits for drd after it was seen doing so; back, it holds
// them again after such a fall.
func (s *SyncState) SetSyncServer(v ServerSync) (fell, back bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.server = v
	switch {
	case v.At.IsZero():
	case v.Synchronous:
		back = s.fell
		s.seenOn, s.fell = true, false
	case s.seenOn && !s.fell:
		fell, s.fell = true, true
	}
	return fell, back
}

// SyncServer implements Syncer.
func (s *SyncState) SyncServer() (ServerSync, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server, s.policy.On() && !s.server.At.IsZero()
}

// SyncReset forgets what waited: the shipper stopped (its lease was lost).
func (s *SyncState) SyncReset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unhanded, s.handed, s.stalled = time.Time{}, nil, false
}

// since is when the oldest log still waiting arrived (zero: none waits).
func (s *SyncState) since() time.Time {
	if len(s.handed) > 0 {
		return s.handed[0].since
	}
	return s.unhanded
}

// SyncCheck compares the wait with the policy's timeout: stalled while it
// is past it; newly the first time it is, recovered the first time it is no
// longer (to log each once).
func (s *SyncState) SyncCheck(now time.Time) (stalled, newly, recovered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	since := s.since()
	stalled = s.policy.On() && !since.IsZero() && now.Sub(since) >= s.policy.Timeout
	newly, recovered = stalled && !s.stalled, !stalled && s.stalled
	s.stalled = stalled
	return stalled, newly, recovered
}

// SyncStatus implements Syncer.
func (s *SyncState) SyncStatus(now time.Time) (SyncMode, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mode := s.policy.Mode
	if mode == "" {
		mode = SyncOff
	}
	since := s.since()
	if !s.policy.On() || since.IsZero() {
		return mode, 0, false
	}
	w := now.Sub(since)
	return mode, w, w >= s.policy.Timeout
}

var (
	syncModeDesc = prometheus.NewDesc("drkit_sync_mode",
		"1 for the cluster's zero-RPO mode (off, remote_write, remote_durable).", []string{"cluster", "mode"}, nil)
	syncWaitDesc = prometheus.NewDesc("drkit_sync_wait_seconds",
		"How long the oldest log drd received has waited for the sync regions: in zero-RPO mode, how long the server's commits have waited on drd.", []string{"cluster"}, nil)
	syncServerSyncDesc = prometheus.NewDesc("drkit_sync_server_synchronous",
		"1 while the server itself says it holds commits for drd (PostgreSQL: drd's sync_state is sync or quorum; MariaDB: Rpl_semi_sync_master_status ON); 0: its commits return without drd, not zero-RPO. Absent until drd asked the server.", []string{"cluster"}, nil)
	syncServerWaitingDesc = prometheus.NewDesc("drkit_sync_server_waiting_sessions",
		"Sessions whose commit the server holds for synchronous replication, as the server counts them (PostgreSQL: wait_event SyncRep; MariaDB: Rpl_semi_sync_master_wait_sessions).", []string{"cluster"}, nil)
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
	if srv, ok := s.SyncServer(); ok {
		v = 0
		if srv.Synchronous {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(syncServerSyncDesc, prometheus.GaugeValue, v, cluster)
		ch <- prometheus.MustNewConstMetric(syncServerWaitingDesc, prometheus.GaugeValue, float64(srv.Waiting), cluster)
	}
}
