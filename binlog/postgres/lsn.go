package postgres

import (
	"fmt"
	"strconv"

	"github.com/jackc/pglogrepl"
)

// LSN is a position in the WAL.
type LSN = pglogrepl.LSN

// ParseLSN parses "16/B374D848".
func ParseLSN(s string) (LSN, error) { return pglogrepl.ParseLSN(s) }

// Segment identifies one WAL segment file: its timeline and number.
type Segment struct {
	TLI uint32
	No  uint64 // the segment's number: its start LSN / segment size
}

// segmentsPerXLogID is how many segments one "xlogid" (4 GiB) holds.
func segmentsPerXLogID(segSize uint64) uint64 { return 0x100000000 / segSize }

// SegmentOf returns the segment of timeline tli holding lsn.
func SegmentOf(tli uint32, lsn LSN, segSize uint64) Segment {
	return Segment{TLI: tli, No: uint64(lsn) / segSize}
}

// Start is the segment's first LSN.
func (s Segment) Start(segSize uint64) LSN { return LSN(s.No * segSize) }

// Name is the segment's file name, as in pg_wal: TTTTTTTTXXXXXXXXYYYYYYYY.
func (s Segment) Name(segSize uint64) string {
	per := segmentsPerXLogID(segSize)
	return fmt.Sprintf("%08X%08X%08X", s.TLI, s.No/per, s.No%per)
}

// ParseSegmentName parses a 24-hex-digit WAL file name.
func ParseSegmentName(name string, segSize uint64) (Segment, error) {
	if len(name) != 24 {
		return Segment{}, fmt.Errorf("%q is not a WAL segment name", name)
	}
	tli, err1 := strconv.ParseUint(name[0:8], 16, 32)
	hi, err2 := strconv.ParseUint(name[8:16], 16, 32)
	lo, err3 := strconv.ParseUint(name[16:24], 16, 32)
	if err1 != nil || err2 != nil || err3 != nil {
		return Segment{}, fmt.Errorf("%q is not a WAL segment name", name)
	}
	return Segment{TLI: uint32(tli), No: hi*segmentsPerXLogID(segSize) + lo}, nil
}

// IsSegmentName reports whether name looks like a WAL segment file name.
func IsSegmentName(name string) bool {
	if len(name) != 24 {
		return false
	}
	_, err := strconv.ParseUint(name, 16, 64)
	if err != nil {
		// 24 hex digits overflow uint64: check the halves.
		_, e1 := strconv.ParseUint(name[:12], 16, 64)
		_, e2 := strconv.ParseUint(name[12:], 16, 64)
		return e1 == nil && e2 == nil
	}
	return true
}

// IsHistoryName reports whether name is a timeline history file name.
func IsHistoryName(name string) bool {
	if len(name) != 16 || name[8:] != ".history" {
		return false
	}
	_, err := strconv.ParseUint(name[:8], 16, 32)
	return err == nil
}

// CheckSegmentSize refuses a WAL segment size PostgreSQL cannot have (a power
// of two from 1 MiB to 1 GiB): it comes from a store, and a zero would divide
// by zero wherever segments are numbered.
func CheckSegmentSize(size uint64) error {
	if size < 1<<20 || size > 1<<30 || size&(size-1) != 0 {
		return fmt.Errorf("WAL segment size %d is not a power of two from 1 MiB to 1 GiB", size)
	}
	return nil
}
