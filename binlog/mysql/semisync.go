package mysql

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/drkit/drkit/binlog"
)

// Zero-RPO mode (clusters[].sync) on MariaDB is its semi-synchronous
// replication, whose replica side drd speaks: the session sets
// @rpl_semi_sync_slave, and the server then puts two bytes before every event
// it sends, a magic byte and a flag asking for an acknowledgement. It flags
// the last event of a transaction whose client waits; the client's COMMIT
// returns once a replica acknowledges a (binlog file, position) at or past
// that event's end, or after rpl_semi_sync_master_timeout, when the server
// falls back to asynchronous replication. drd acknowledges only after every
// sync region holds the transaction (pump), so a returned commit is in them.
//
// Hand-written: go-mysql's BinlogSyncer speaks the protocol, but it
// acknowledges an event as soon as it is read, which is what zero RPO must
// not do, and drd reads the stream itself (dump.go).

const (
	// semiSyncMagic starts every event packet of a semi-synchronous session
	// and every acknowledgement.
	semiSyncMagic = 0xef
	// semiSyncAckReq is the flag bit asking for an acknowledgement.
	semiSyncAckReq = 0x01
)

// AckPos is where a transaction the server waits on ends in its binlog.
type AckPos struct {
	File string
	Pos  uint32
}

// semiSyncEvent strips the semi-sync header from an event packet (pk[0] is
// the OK byte) and records whether it asks for an acknowledgement.
func (d *dumpConn) semiSyncEvent(pk []byte) ([]byte, error) {
	if len(pk) < 3 || pk[1] != semiSyncMagic {
		// The server did not take the session as semi-synchronous (its
		// rpl_semi_sync_master_enabled is off): the event would be misread.
		return nil, fmt.Errorf("binlog dump: an event came without the semi-sync header: is rpl_semi_sync_master_enabled on?")
	}
	d.ackReq = pk[2]&semiSyncAckReq != 0
	return pk[3:len(pk):len(pk)], nil
}

// ack tells the server that the replica holds its binlog up to p: the
// packet is the magic byte, the position (8 bytes) and the file name, as the
// first packet of a new command (sequence 0), which the server's ack
// receiver reads beside the dump.
func (d *dumpConn) ack(p AckPos) error {
	data := make([]byte, 4+1+8+len(p.File))
	data[4] = semiSyncMagic
	binary.LittleEndian.PutUint64(data[5:], uint64(p.Pos))
	copy(data[13:], p.File)
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.c.ResetSequence()
	if err := d.c.WritePacket(data); err != nil {
		return fmt.Errorf("semi-sync acknowledgement of %s:%d: %w", p.File, p.Pos, err)
	}
	return nil
}

// binlogName is what a binlog file name looks like (log_basename.000042).
var binlogName = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,512}$`)

// rotateTarget returns the file a Rotate event names (the next binlog file).
// Its body is the position (8 bytes) and the name, and a CRC32 of the event
// may follow: real rotates carry one when their file's events do, and the
// rotates the server makes up (log_pos 0) carry one or not depending on the
// previous file's checksum setting. So the trailer is judged by checking it:
// a name is never cut short by 4 bytes that happen to look like a name.
func rotateTarget(ev []byte, h header) (string, error) {
	body := ev[headerLen:]
	if len(body) < 8 {
		return "", fmt.Errorf("rotate event of %d bytes is too short", len(ev))
	}
	name := body[8:]
	if n := len(ev); len(name) > 4 && crc32.ChecksumIEEE(ev[:n-4]) == binary.LittleEndian.Uint32(ev[n-4:]) {
		name = name[:len(name)-4]
	}
	if !binlogName.Match(name) {
		return "", fmt.Errorf("rotate event (log_pos %d) names %q, not a binlog file", h.LogPos, name)
	}
	return string(name), nil
}

// awaitSync sets b up to report when every sync region holds it, and reports
// whether any region will (none: nothing to wait for).
func (s *Shipper) awaitSync(b *batch, synced chan<- *batch) bool {
	n := int32(0)
	for _, t := range s.Targets {
		if t.Sync {
			n++
		}
	}
	b.syncLeft.Store(n)
	b.synced = synced
	return n > 0
}

// syncStored records that one sync region stored b; the last one hands b
// back to the pump. Never blocking: a pump that has ended (the session
// failed) reads no more, and its server forgot the waits anyway.
func (b *batch) syncStored() {
	if b.synced == nil || b.syncLeft.Add(-1) != 0 {
		return
	}
	select {
	case b.synced <- b:
	default:
	}
}

// watchSync logs, once per stall and once at its end, that the sync regions
// have held up transactions longer than sync.timeout.
func (s *Shipper) watchSync(now time.Time) {
	switch _, newly, recovered := s.SyncCheck(now); {
	case newly:
		s.Log.Error("transactions have waited for a sync region longer than sync.timeout: commits wait up to rpl_semi_sync_master_timeout, then the server falls back to asynchronous replication (restore may then lose them)",
			"cluster", s.Cluster, "timeout", s.Sync.Timeout.String())
	case recovered:
		s.Log.Info("the sync regions hold the transactions received again; commits no longer wait", "cluster", s.Cluster)
	}
}

// serverPoll is how often drd asks the server about its semi-synchronous
// replication in zero-RPO mode.
// A status query a second costs the server nothing that shows, and a fall
// back to asynchronous commits is then in the metric within a second.
const serverPoll = time.Second

// watchSemiSyncServer asks the server every serverPoll whether it still
// holds commits for semi-synchronous acknowledgement and how many it holds
// now (binlog.ServerSync). The server falls back to asynchronous replication
// by itself when an acknowledgement takes longer than
// rpl_semi_sync_master_timeout, and commits then return that the regions may
// lack: drd says so once at ERROR, and once at INFO when it is back (news
// only after the server was seen on: until drd's first acknowledgement it
// may still be off from while no drd ran).
func (s *Shipper) watchSemiSyncServer(ctx context.Context) {
	db, err := sql.Open("mysql", s.DSN)
	if err != nil {
		s.Log.Warn("could not poll the server's semi-synchronous replication", "cluster", s.Cluster, "err", err)
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	defer s.SetSyncServer(binlog.ServerSync{}) // stale once the session ends
	for ctx.Err() == nil {
		on, waiting, err := semiSyncServer(ctx, db)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.SetSyncServer(binlog.ServerSync{}) // not known: no view rather than a stale one
			s.Log.Debug("could not poll the server's semi-synchronous replication", "cluster", s.Cluster, "err", err)
		default:
			fell, back := s.SetSyncServer(binlog.ServerSync{At: time.Now(), Synchronous: on, Waiting: waiting})
			if fell {
				s.Log.Error("the server fell back to asynchronous replication (Rpl_semi_sync_master_status OFF): commits return without waiting for drd, not zero-RPO, until drd catches up",
					"cluster", s.Cluster)
			}
			if back {
				s.Log.Info("the server waits for drd's acknowledgement again (Rpl_semi_sync_master_status ON)", "cluster", s.Cluster)
			}
		}
		binlog.Sleep(ctx, serverPoll)
	}
}

// semiSyncServer reads Rpl_semi_sync_master_status and
// Rpl_semi_sync_master_wait_sessions.
func semiSyncServer(ctx context.Context, db *sql.DB) (on bool, waiting int, err error) {
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_wait_sessions')")
	if err != nil {
		return false, 0, err
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return false, 0, err
		}
		seen++
		switch strings.ToLower(name) {
		case "rpl_semi_sync_master_status":
			on = strings.EqualFold(value, "ON")
		case "rpl_semi_sync_master_wait_sessions":
			if waiting, err = strconv.Atoi(value); err != nil {
				return false, 0, fmt.Errorf("read Rpl_semi_sync_master_wait_sessions %q: %w", value, err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return false, 0, err
	}
	if seen != 2 {
		return false, 0, errors.New("the server does not report Rpl_semi_sync_master_status and Rpl_semi_sync_master_wait_sessions")
	}
	return on, waiting, nil
}

// checkSemiSync verifies the server runs semi-synchronous replication, which
// zero-RPO mode needs, naming the settings when it does not.
func (s *Shipper) checkSemiSync(ctx context.Context) error {
	db, err := sql.Open("mysql", s.DSN)
	if err != nil {
		return err
	}
	defer db.Close()
	var enabled int
	var waitPoint string
	err = db.QueryRowContext(ctx, "SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_master_wait_point").Scan(&enabled, &waitPoint)
	if err != nil {
		return fmt.Errorf("read the server's semi-sync settings (sync.mode %s needs MariaDB 10.3 or newer): %w", s.Sync.Mode, err)
	}
	if enabled != 1 {
		return fmt.Errorf("sync.mode is %s but the server's semi-synchronous replication is off: SET GLOBAL rpl_semi_sync_master_enabled = ON (and put rpl_semi_sync_master_enabled = ON in its config), or set sync.mode: off", s.Sync.Mode)
	}
	var name string
	var clients int
	if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'").Scan(&name, &clients); err == nil && clients > 0 {
		s.Log.Warn("other semi-synchronous replicas are connected: the server releases a commit on the first acknowledgement, theirs or drd's, so a commit may return before drd's regions hold it (or an earlier drd connection is still closing)",
			"cluster", s.Cluster, "semi_sync_clients", clients)
	}
	if !strings.EqualFold(waitPoint, "AFTER_SYNC") {
		s.Log.Warn("rpl_semi_sync_master_wait_point is not AFTER_SYNC: other sessions may read a transaction before the sync regions hold it (a disaster can then lose what they read); set it to AFTER_SYNC", "cluster", s.Cluster, "wait_point", waitPoint)
	}
	return nil
}
