package mysql

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Binlog event types this package looks at (see MariaDB's log_event.h).
const (
	evQuery             = 2
	evStop              = 3
	evRotate            = 4
	evFormatDescription = 15
	evXID               = 16
	evHeartbeat         = 27
	evXAPrepare         = 38
	evTableMap          = 19
	evWriteRowsV1       = 23
	evUpdateRowsV1      = 24
	evDeleteRowsV1      = 25
	evWriteRowsV2       = 30
	evUpdateRowsV2      = 31
	evDeleteRowsV2      = 32
	evMariaAnnotateRows = 160
	evMariaCheckpoint   = 161
	evMariaGTID         = 162
	evMariaGTIDList     = 163
	evMariaQueryCompr   = 165
	// MariaDB's compressed row events.
	evMariaWriteRowsCompr    = 166
	evMariaUpdateRowsCompr   = 167
	evMariaDeleteRowsCompr   = 168
	evMariaWriteRowsComprV1  = 169
	evMariaUpdateRowsComprV1 = 170
	evMariaDeleteRowsComprV1 = 171
)

// headerLen is the binlog v4 common event header: timestamp(4) type(1)
// server_id(4) event_size(4) log_pos(4) flags(2).
const headerLen = 19

// header is the common header of one raw event.
type header struct {
	Timestamp uint32
	Type      byte
	ServerID  uint32
	Size      uint32
	LogPos    uint32
}

func parseHeader(ev []byte) (header, error) {
	if len(ev) < headerLen {
		return header{}, fmt.Errorf("binlog event of %d bytes is shorter than its header", len(ev))
	}
	h := header{
		Timestamp: binary.LittleEndian.Uint32(ev[0:]),
		Type:      ev[4],
		ServerID:  binary.LittleEndian.Uint32(ev[5:]),
		Size:      binary.LittleEndian.Uint32(ev[9:]),
		LogPos:    binary.LittleEndian.Uint32(ev[13:]),
	}
	if int(h.Size) != len(ev) {
		return h, fmt.Errorf("binlog event type %d says %d bytes but has %d", h.Type, h.Size, len(ev))
	}
	return h, nil
}

// checksumAlg reads the checksum algorithm a Format_description event announces
// for the events after it: 0 none, 1 CRC32. The byte sits before the event's own
// 4-byte CRC, which is always present in servers that know checksums (MariaDB
// 5.3+, MySQL 5.6.1+).
func checksumAlg(fde []byte) (byte, error) {
	if len(fde) < headerLen+2+50+4+1+5 {
		return 0, fmt.Errorf("format description event of %d bytes is too short", len(fde))
	}
	return fde[len(fde)-5], nil
}

// gtidEvent is a MariaDB GTID event: the start of a transaction (event group).
type gtidEvent struct {
	GTID       GTID
	Standalone bool // no terminating XID/COMMIT: the group is one statement (DDL)
}

func parseMariaGTID(ev []byte, h header) (gtidEvent, error) {
	body := ev[headerLen:]
	if len(body) < 13 {
		return gtidEvent{}, fmt.Errorf("GTID event of %d bytes is too short", len(ev))
	}
	return gtidEvent{
		GTID: GTID{
			Seq:    binary.LittleEndian.Uint64(body[0:]),
			Domain: binary.LittleEndian.Uint32(body[8:]),
			Server: h.ServerID,
		},
		Standalone: body[12]&1 != 0,
	}, nil
}

// queryText returns the SQL text of a Query event (without checksum).
func queryText(ev []byte, crc bool) ([]byte, error) {
	body := ev[headerLen:]
	if crc {
		if len(body) < 4 {
			return nil, fmt.Errorf("query event too short")
		}
		body = body[:len(body)-4]
	}
	// Post-header: thread_id(4) exec_time(4) db_len(1) error_code(2) status_vars_len(2).
	if len(body) < 13 {
		return nil, fmt.Errorf("query event too short")
	}
	dbLen := int(body[8])
	varsLen := int(binary.LittleEndian.Uint16(body[11:]))
	start := 13 + varsLen + dbLen + 1
	if start > len(body) {
		return nil, fmt.Errorf("query event's lengths exceed it")
	}
	return body[start:], nil
}

// isCommitQuery reports whether a Query event ends a transaction.
func isCommitQuery(q []byte) bool {
	return bytes.EqualFold(q, []byte("COMMIT")) || bytes.EqualFold(q, []byte("ROLLBACK"))
}

// tableMapNames returns the database and table a Table_map event names. Its
// post-header (table id and flags) is as long as the binlog's
// Format_description event says: 8 bytes since MySQL 5.1.4 / all MariaDB.
func tableMapNames(ev, fde []byte) (db, table string, err error) {
	const fdeFixed = headerLen + 2 + 50 + 4 + 1 // version, server version, time, header length
	if len(fde) <= fdeFixed+evTableMap-1 {
		return "", "", fmt.Errorf("format description event of %d bytes has no table map length", len(fde))
	}
	body := ev[headerLen:]
	p := int(fde[fdeFixed+evTableMap-1])
	name := func() (string, error) {
		if p >= len(body) || p+1+int(body[p])+1 > len(body) {
			return "", fmt.Errorf("table map event too short")
		}
		n := int(body[p])
		s := string(body[p+1 : p+1+n])
		p += 1 + n + 1 // length, name, NUL
		return s, nil
	}
	if db, err = name(); err != nil {
		return "", "", err
	}
	table, err = name()
	return db, table, err
}
