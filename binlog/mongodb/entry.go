package mongodb

import (
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TS is an oplog timestamp as one number: seconds << 32 | increment. It
// sorts as the server orders entries.
type TS uint64

// MakeTS returns the TS of a BSON timestamp.
func MakeTS(t bson.Timestamp) TS { return TS(uint64(t.T)<<32 | uint64(t.I)) }

// Timestamp is t as a BSON timestamp.
func (t TS) Timestamp() bson.Timestamp { return bson.Timestamp{T: uint32(t >> 32), I: uint32(t)} }

// Time is t's seconds as a time.
func (t TS) Time() time.Time { return time.Unix(int64(t>>32), 0).UTC() }

// Back is t moved back to the start of the second seconds before its own
// (not below zero); t itself for 0.
func (t TS) Back(seconds uint32) TS {
	if seconds == 0 {
		return t
	}
	s := uint32(t >> 32)
	if s < seconds {
		return 0
	}
	return TS(uint64(s-seconds) << 32)
}

func (t TS) String() string { return fmt.Sprintf("%d.%d", uint32(t>>32), uint32(t)) }

// Entry is one oplog entry as the server stored it, and what drd reads of it.
type Entry struct {
	TS TS
	// Wall is the entry's wall-clock time (its "wall" field; its ts's
	// seconds when it has none).
	Wall time.Time
	Op   string
	NS   string
	// ID is the entry's own _id (FerretDB gives its entries one; MongoDB's
	// have none): with TS, what tells two entries apart.
	ID  bson.RawValue
	Raw bson.Raw
}

// Key tells entries apart: its ts, and its _id where it has one.
func (e Entry) Key() string { return string(e.Raw.Lookup("ts").Value) + string(e.ID.Value) }

// maxEntry bounds an entry read from a store: 16 MiB documents, and the
// entry's own fields around one.
const maxEntry = 16<<20 + 64<<10

// ParseEntry reads an oplog entry's fields. raw is validated first: it may
// come from a store, which is untrusted.
func ParseEntry(raw bson.Raw) (Entry, error) {
	if len(raw) > maxEntry {
		return Entry{}, fmt.Errorf("oplog entry of %d bytes", len(raw))
	}
	if err := raw.Validate(); err != nil {
		return Entry{}, fmt.Errorf("oplog entry: %w", err)
	}
	tsv, err := raw.LookupErr("ts")
	if err != nil {
		return Entry{}, errors.New("oplog entry without ts")
	}
	t, i, ok := tsv.TimestampOK()
	if !ok {
		return Entry{}, errors.New("oplog entry: ts is not a timestamp")
	}
	e := Entry{TS: MakeTS(bson.Timestamp{T: t, I: i}), Raw: raw}
	e.Wall = e.TS.Time()
	if w, ok := raw.Lookup("wall").DateTimeOK(); ok {
		e.Wall = time.UnixMilli(w).UTC()
	}
	if e.Op, ok = raw.Lookup("op").StringValueOK(); !ok {
		return Entry{}, fmt.Errorf("oplog entry %s: no op", e.TS)
	}
	e.NS, _ = raw.Lookup("ns").StringValueOK()
	e.ID, _ = raw.LookupErr("_id")
	return e, nil
}
