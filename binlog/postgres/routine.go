package postgres

import (
	"encoding/binary"
	"slices"
)

// The shipper flushes the open segment every flush_interval so that a user's
// commit is in every region within seconds. drd's own heartbeat, though, writes
// a transaction every second on a cluster that has replicas, and on an idle
// database that alone made drd put a WAL chunk into every region every second:
// most of an idle drd's CPU, and a PUT per second per region on S3. That WAL is
// not what the exposure window protects, so the shipper holds it back (up to
// monitor.heartbeat.flush_interval) until real writes arrive or the wait ends;
// the slot keeps it meanwhile, so nothing can be lost.
//
// routineScanner decides which WAL that is. It follows the record stream as it
// arrives and calls a stretch routine only when every record in it is on the
// list below; a record it does not recognise, cannot parse or has not seen
// whole counts as a user's write, so a mistake costs a flush, never exposure:
//   - heap, heap2 and btree records whose blocks all belong to the heartbeat
//     table's relation files (its heap and indexes);
//   - the commit or abort of a transaction that wrote nothing else: its xid is
//     newer than every xid seen before its first heartbeat record (so it wrote
//     nothing earlier), it wrote nothing else since, and its commit record
//     names no subtransactions, dropped files or invalidations;
//   - checkpoints, running-transaction snapshots, no-ops, hint-bit page images
//     and WAL switches.
//
// The WAL format is PostgreSQL's (access/xlogrecord.h, access/xlog_internal.h,
// access/xact.h), read as 15 and later write it. No Go library decodes WAL
// records; pglogrepl stops at the replication protocol.
type routineScanner struct {
	segSize, pageSize uint64
	heartbeat         heartbeatFiles

	pos      uint64 // LSN of the next byte fed
	hdr      []byte // the page header being read
	skipTo   uint64 // record bytes before this LSN are not read (a record begun before the scan, a switch's padding)
	rec      []byte // the head of the record being read (up to maxHead bytes)
	recLen   uint64 // its bytes read so far, page headers excluded
	recTotal uint64 // its xl_tot_len, once known

	user   bool // a user's record was read whole since the last Reset
	broken bool // the stream did not parse: nothing is routine any more
	// newest is the newest xid of any record read; hbXIDs the transactions
	// that so far wrote only heartbeat records, and were new when they began.
	newest uint32
	hbXIDs map[uint32]bool
	// records counts the records read whole (tests compare it with pg_waldump).
	records int
}

// heartbeatFiles identifies the heartbeat table's WAL: its relation files and
// the server's next xid when they were looked up (older transactions may
// have written other things before the scan began).
type heartbeatFiles struct {
	rels    []relFile
	nextXID uint32
}

// relFile is a RelFileLocator: tablespace, database and relation file number.
type relFile struct{ spc, db, rel uint32 }

const (
	shortPageHeader = 24 // MAXALIGN(sizeof(XLogPageHeaderData))
	longPageHeader  = 40 // MAXALIGN(sizeof(XLogLongPageHeaderData))
	recordHeader    = 24 // SizeOfXLogRecord
	xlpFirstIsCont  = 0x0001
	xlpLongHeader   = 0x0002
	maxHead         = 1024 // a record's headers: at most 33 block headers of 27 bytes, and 13 more
	maxTracked      = 1000

	rmXLOG    = 0
	rmXact    = 1
	rmStandby = 8
	rmHeap2   = 9
	rmHeap    = 10
	rmBtree   = 11

	xlogCheckpointOnline = 0x10
	xlogNoop             = 0x20
	xlogSwitch           = 0x40
	xlogFPIForHint       = 0xA0
	xactOpMask           = 0x70
	xactHasInfo          = 0x80
	xactCommit           = 0x00
	xactAbort            = 0x20
	standbyRunningXacts  = 0x10
	// xinfo bits a heartbeat's commit may carry: database info and the
	// completion flags. Subtransactions, files, invalidations and the rest
	// mean the transaction did more than write the heartbeat.
	xinfoAllowed = 1<<0 | 1<<29 | 1<<30 | 1<<31
)

// newRoutineScanner reads WAL from start, a segment's first byte.
func newRoutineScanner(start, segSize uint64) *routineScanner {
	return &routineScanner{pos: start, segSize: segSize, pageSize: 8192, hbXIDs: map[uint32]bool{}}
}

// SetHeartbeat names the heartbeat table's files; until then nothing is routine.
func (r *routineScanner) SetHeartbeat(f heartbeatFiles) { r.heartbeat = f }

// Routine reports whether everything read since the last Reset was routine
// and no record is half read.
func (r *routineScanner) Routine() bool {
	return len(r.heartbeat.rels) > 0 && !r.broken && !r.user && r.recLen == 0
}

// Reset starts a new stretch: what was read so far went to the regions.
func (r *routineScanner) Reset() { r.user = false }

// Feed reads the stream's next bytes.
func (r *routineScanner) Feed(data []byte) {
	for len(data) > 0 && !r.broken {
		if r.pos%r.pageSize == 0 || len(r.hdr) > 0 {
			data = r.pageHeader(data)
			continue
		}
		n := min(uint64(len(data)), r.pageSize-r.pos%r.pageSize)
		switch {
		case r.skipTo > r.pos:
			n = min(n, r.skipTo-r.pos)
		case r.recLen == 0 && r.pos%8 != 0:
			n = min(n, align8(r.pos)-r.pos) // padding between records
		default:
			n = r.record(data[:n])
		}
		r.pos += n
		data = data[n:]
	}
}

// pageHeader reads (part of) the header that starts every page.
func (r *routineScanner) pageHeader(data []byte) []byte {
	need := r.pageHeaderLen()
	n := min(need-uint64(len(r.hdr)), uint64(len(data)))
	r.hdr = append(r.hdr, data[:n]...)
	r.pos += n
	data = data[n:]
	if uint64(len(r.hdr)) < r.pageHeaderLen() {
		return data
	}
	info := binary.LittleEndian.Uint16(r.hdr[2:])
	if info&xlpLongHeader != 0 {
		r.pageSize = uint64(binary.LittleEndian.Uint32(r.hdr[36:]))
		if r.pageSize == 0 || r.pageSize%8 != 0 || r.segSize%r.pageSize != 0 {
			r.broken = true
		}
	}
	// The rest of a record begun before the scan: nobody reads its head, so
	// the stretch is called a user's.
	if info&xlpFirstIsCont != 0 && r.recLen == 0 && r.skipTo <= r.pos {
		r.skipTo = r.after(uint64(binary.LittleEndian.Uint32(r.hdr[16:])))
		r.user = true
	}
	r.hdr = r.hdr[:0]
	return data
}

// pageHeaderLen is the length of the page header being read, as far as known.
func (r *routineScanner) pageHeaderLen() uint64 {
	if len(r.hdr) >= 4 && binary.LittleEndian.Uint16(r.hdr[2:])&xlpLongHeader != 0 {
		return longPageHeader
	}
	return shortPageHeader
}

// after is the LSN after n more record bytes from pos, counting the page
// headers between, aligned as the next record starts.
func (r *routineScanner) after(n uint64) uint64 {
	p := r.pos
	for n > 0 {
		if p%r.pageSize == 0 {
			p += shortPageHeader
			if p%r.segSize == shortPageHeader {
				p += longPageHeader - shortPageHeader
			}
		}
		k := min(n, r.pageSize-p%r.pageSize)
		p, n = p+k, n-k
	}
	return align8(p)
}

func align8(p uint64) uint64 { return (p + 7) &^ 7 }

// record reads record bytes from within one page and returns how many.
func (r *routineScanner) record(data []byte) uint64 {
	want := r.recTotal
	if want == 0 {
		want = 4 // xl_tot_len first: records are 8-aligned, so it is never split
	}
	n := min(uint64(len(data)), want-r.recLen)
	if uint64(len(r.rec)) == r.recLen {
		r.rec = append(r.rec, data[:min(n, maxHead-uint64(len(r.rec)))]...)
	}
	r.recLen += n
	switch {
	case r.recTotal == 0:
		if r.recLen == 4 {
			r.recTotal = uint64(binary.LittleEndian.Uint32(r.rec))
			r.broken = r.recTotal < recordHeader
		}
	case r.recLen == r.recTotal:
		r.finish()
	}
	return n
}

// finish classifies the record just read whole.
func (r *routineScanner) finish() {
	rec := r.rec
	xid := binary.LittleEndian.Uint32(rec[4:])
	info, rmid := rec[16], rec[17]
	h, ok := parseHeaders(rec, r.recTotal)
	if !ok {
		r.broken = true
		return
	}
	if !r.routine(h, info, rmid, xid) {
		r.user = true
		delete(r.hbXIDs, xid)
	}
	if xid >= 3 && (r.newest == 0 || xidPrecedes(r.newest, xid)) {
		r.newest = xid
	}
	if rmid == rmXLOG && info&0xF0 == xlogSwitch {
		r.skipTo = (r.pos/r.segSize + 1) * r.segSize // the rest of the segment is padding
	}
	r.records++
	r.rec, r.recLen, r.recTotal = r.rec[:0], 0, 0
}

// xidPrecedes compares transaction ids as PostgreSQL does, modulo 2^32.
func xidPrecedes(a, b uint32) bool { return int32(a-b) < 0 }

// routine says whether a whole record is routine.
func (r *routineScanner) routine(h recordHeaders, info, rmid byte, xid uint32) bool {
	switch rmid {
	case rmXLOG:
		op := info & 0xF0
		return op == xlogCheckpointOnline || op == xlogNoop || op == xlogSwitch || op == xlogFPIForHint
	case rmStandby:
		return info&0xF0 == standbyRunningXacts
	case rmXact:
		op := info & xactOpMask
		if (op != xactCommit && op != xactAbort) || !r.hbXIDs[xid] {
			return false
		}
		delete(r.hbXIDs, xid)
		return info&xactHasInfo == 0 || h.xinfo(r.rec)&^xinfoAllowed == 0
	case rmHeap, rmHeap2, rmBtree:
		if len(h.rels) == 0 {
			return false
		}
		for _, f := range h.rels {
			if !slices.Contains(r.heartbeat.rels, f) {
				return false
			}
		}
		return xid == 0 || r.trackHeartbeat(xid)
	}
	return false
}

// trackHeartbeat records that xid wrote the heartbeat, and says whether its
// commit may be routine: it must be a transaction begun after the scan's
// start and not seen writing anything before.
func (r *routineScanner) trackHeartbeat(xid uint32) bool {
	if r.hbXIDs[xid] {
		return true
	}
	fresh := !xidPrecedes(xid, r.heartbeat.nextXID) && (r.newest == 0 || xidPrecedes(r.newest, xid))
	if !fresh || len(r.hbXIDs) >= maxTracked {
		return false
	}
	r.hbXIDs[xid] = true
	return true
}

// recordHeaders is what a record's headers say: the relation files of its
// blocks and where its main data starts.
type recordHeaders struct {
	rels     []relFile
	mainData uint64
}

// xinfo is a commit or abort record's xl_xact_xinfo (after the 8-byte time),
// or every bit set when rec holds too little of the record.
func (h recordHeaders) xinfo(rec []byte) uint32 {
	if h.mainData+12 > uint64(len(rec)) {
		return ^uint32(0)
	}
	return binary.LittleEndian.Uint32(rec[h.mainData+8:])
}

// parseHeaders reads a record's block headers (xlogreader.c's
// DecodeXLogRecord, headers only); ok is false when they do not add up to
// the record's length, which means the scan lost its place.
func parseHeaders(rec []byte, total uint64) (h recordHeaders, ok bool) {
	const (
		dataShort  = 255
		dataLong   = 254
		origin     = 253
		toplevel   = 252
		maxBlockID = 32
		hasImage   = 0x10
		sameRel    = 0x80
		imgHole    = 0x01
		imgCompr   = 0x04 | 0x08 | 0x10 // PGLZ, LZ4, ZSTD (PostgreSQL 15+)
	)
	p, blockData, mainLen := uint64(recordHeader), uint64(0), uint64(0)
	take := func(n uint64) (uint64, bool) {
		if p+n > uint64(len(rec)) {
			return 0, false
		}
		var v uint64
		for i := range n {
			v |= uint64(rec[p+i]) << (8 * i)
		}
		p += n
		return v, true
	}
	var last relFile
	for p < total && total-p > blockData+mainLen && mainLen == 0 {
		id, ok := take(1)
		if !ok {
			return h, false
		}
		switch {
		case id == dataShort:
			if mainLen, ok = take(1); !ok {
				return h, false
			}
		case id == dataLong:
			if mainLen, ok = take(4); !ok {
				return h, false
			}
		case id == origin:
			p += 2
		case id == toplevel:
			p += 4
		case id <= maxBlockID:
			flags, ok1 := take(1)
			n, ok2 := take(2)
			if !ok1 || !ok2 {
				return h, false
			}
			blockData += n
			if flags&hasImage != 0 {
				img, ok1 := take(2)
				_, ok2 := take(2) // hole offset
				bimg, ok3 := take(1)
				if !ok1 || !ok2 || !ok3 {
					return h, false
				}
				if bimg&imgCompr != 0 && bimg&imgHole != 0 {
					p += 2 // hole length
				}
				blockData += img
			}
			if flags&sameRel == 0 {
				spc, ok1 := take(4)
				db, ok2 := take(4)
				rel, ok3 := take(4)
				if !ok1 || !ok2 || !ok3 {
					return h, false
				}
				last = relFile{uint32(spc), uint32(db), uint32(rel)}
			} else if len(h.rels) == 0 {
				return h, false
			}
			h.rels = append(h.rels, last)
			p += 4 // block number
		default:
			return h, false
		}
	}
	h.mainData = p + blockData
	return h, p+blockData+mainLen == total
}
