package mysql

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Txn is one whole transaction (MariaDB: event group) as raw binlog events,
// each with its header and, if the binlog has them, its checksum.
type Txn struct {
	GTID   GTID
	Events [][]byte
	// Time is the commit time: the timestamp of the group's last event (whole
	// seconds, the binlog's resolution).
	Time uint32
	// FDE is the Format_description event of the binlog file the events came
	// from; replay sends it before them.
	FDE  []byte
	Size int
	// Heartbeat is set when the transaction wrote nothing but drd's
	// heartbeat table (see Shipper.Heartbeat).
	Heartbeat bool
	// Ack, in a semi-synchronous session, is the binlog position to
	// acknowledge once the sync regions hold the transaction (nil: the
	// server waits on none of its events).
	Ack *AckPos
}

// assembler groups a raw event stream into whole transactions and drops the
// events that belong to no transaction (rotations, heartbeats, GTID lists).
type assembler struct {
	fde []byte
	crc bool
	// heartbeat is the table whose transactions are marked Heartbeat; zero:
	// none are.
	heartbeat HeartbeatTable
	// file is the binlog file the events come from, followed through Rotate
	// events when semiSync is set (acknowledgements name it).
	semiSync bool
	file     string
	ack      *AckPos // asked for by an event of the open transaction

	cur        *Txn
	standalone bool
}

// feed consumes one raw event and returns a transaction when ev completed one.
func (a *assembler) feed(ev []byte) (*Txn, error) {
	h, err := parseHeader(ev)
	if err != nil {
		return nil, err
	}
	switch h.Type {
	case evFormatDescription:
		alg, err := checksumAlg(ev)
		if err != nil {
			return nil, err
		}
		a.fde, a.crc = ev, alg == 1
		return nil, nil
	case evRotate:
		if a.semiSync {
			if a.file, err = rotateTarget(ev, h); err != nil {
				return nil, err
			}
		}
		return nil, nil
	case evHeartbeat, evMariaGTIDList, evMariaCheckpoint, evStop:
		return nil, nil
	case evMariaGTID:
		if a.cur != nil {
			return nil, fmt.Errorf("GTID event from server %d inside transaction %s: the stream lost events", h.ServerID, a.cur.GTID)
		}
		if a.fde == nil {
			return nil, fmt.Errorf("transaction before any format description event")
		}
		g, err := parseMariaGTID(ev, h)
		if err != nil {
			return nil, err
		}
		a.cur = &Txn{GTID: g.GTID, FDE: a.fde, Events: [][]byte{ev}, Size: len(ev)}
		a.standalone = g.Standalone
		a.cur.Heartbeat = a.heartbeat.Table != "" && !g.Standalone
		return nil, nil
	}
	if a.cur == nil {
		return nil, fmt.Errorf("binlog event type %d at %d outside any transaction: the stream lost its GTID event", h.Type, h.LogPos)
	}
	a.cur.Events = append(a.cur.Events, ev)
	a.cur.Size += len(ev)
	if a.cur.Heartbeat {
		a.cur.Heartbeat = a.heartbeatOnly(ev, h)
	}
	end, err := a.ends(ev, h)
	if err != nil || !end {
		return nil, err
	}
	t := a.cur
	t.Time = h.Timestamp
	t.Ack, a.ack = a.ack, nil
	a.cur = nil
	return t, nil
}

// askedAck records that ev, about to be fed, asked for an acknowledgement: the transaction it belongs to, or the next one to end,
// carries its end position.
func (a *assembler) askedAck(ev []byte) {
	if len(ev) >= headerLen && a.file != "" {
		a.ack = &AckPos{File: a.file, Pos: binary.LittleEndian.Uint32(ev[13:])}
	}
}

// ends reports whether ev is the last event of the current group: an XID
// (transactional engines), an XA PREPARE, a COMMIT/ROLLBACK query
// (non-transactional ones), or the single statement of a standalone group (DDL).
func (a *assembler) ends(ev []byte, h header) (bool, error) {
	switch h.Type {
	case evXID, evXAPrepare:
		return true, nil
	case evQuery, evMariaQueryCompr:
		if a.standalone {
			return true, nil
		}
		if h.Type == evMariaQueryCompr {
			return false, nil // compressed statements are never COMMIT
		}
		q, err := queryText(ev, a.crc)
		if err != nil {
			return false, fmt.Errorf("transaction %s: %w", a.cur.GTID, err)
		}
		return isCommitQuery(q), nil
	}
	return false, nil
}

// heartbeatOnly reports whether ev may belong to a transaction that writes
// only the heartbeat table: row events, the annotation of their statement,
// BEGIN/COMMIT/XID, and table maps naming the heartbeat table. Anything else,
// or an event that does not parse, means the transaction is a user's.
func (a *assembler) heartbeatOnly(ev []byte, h header) bool {
	switch h.Type {
	case evXID, evMariaAnnotateRows,
		evWriteRowsV1, evUpdateRowsV1, evDeleteRowsV1, evWriteRowsV2, evUpdateRowsV2, evDeleteRowsV2,
		evMariaWriteRowsCompr, evMariaUpdateRowsCompr, evMariaDeleteRowsCompr,
		evMariaWriteRowsComprV1, evMariaUpdateRowsComprV1, evMariaDeleteRowsComprV1:
		return true
	case evQuery:
		q, err := queryText(ev, a.crc)
		return err == nil && (bytes.EqualFold(q, []byte("BEGIN")) || isCommitQuery(q))
	case evTableMap:
		db, table, err := tableMapNames(ev, a.fde)
		return err == nil && db == a.heartbeat.DB && table == a.heartbeat.Table
	}
	return false
}
