package lease

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/drkit/drkit/storage"
)

// Record is the lease object's content.
type Record struct {
	// Holder names the process holding the lease; "" when it was released.
	Holder string `json:"holder"`
	// Generation is the fencing token: it grows at every change of holder.
	Generation uint64 `json:"generation"`
	// Renewals counts the holder's renewals: every write differs.
	Renewals uint64 `json:"renewals"`
	// TTLMillis is the holder's TTL, for people reading the object.
	TTLMillis int64 `json:"ttl_ms"`
	// Written is the writer's wall clock, for people: expiry never reads it.
	Written time.Time `json:"written"`
}

// Decode reads a lease object; it refuses one that is not a lease record.
func Decode(b []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("lease record: %w", err)
	}
	if r.Holder != "" && r.Generation == 0 {
		return Record{}, errors.New("lease record: a holder with generation 0")
	}
	return r, nil
}

// Lease is one process's view of one lease. Its methods are safe for
// concurrent use.
type Lease struct {
	Store  storage.Store
	Key    string
	Holder string
	TTL    time.Duration
	// Now is the clock (time.Now when nil); its monotonic reading is what
	// expiry uses.
	Now func() time.Time
	Log *slog.Logger

	mu sync.Mutex
	// held: this process holds generation gen, at version, and may work
	// until validUntil.
	held       bool
	gen        uint64
	rec        Record
	version    string
	validUntil time.Time
	// seen is the other holder's version this process last read, and
	// seenAt when it first read it.
	seen   string
	seenAt time.Time
}

func (l *Lease) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// validity is how long after sending a renewal the holder may work.
func (l *Lease) validity() time.Duration { return l.TTL * 9 / 10 }

// Held reports whether this process holds the lease and may still work,
// and its generation.
func (l *Lease) Held() (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held && l.now().Before(l.validUntil) {
		return true, l.gen
	}
	return false, 0
}

// Try makes one attempt: a holder renews; another takes a free lease, a
// released one, or one whose object it has seen unchanged for a TTL; and
// otherwise observes. It reports whether this process holds the lease now.
// An error (the store unreachable) changes nothing: a holder keeps working
// until its validity ends.
func (l *Lease) Try(ctx context.Context) (bool, uint64, error) {
	sw, err := storage.AsSwapper(l.Store)
	if err != nil {
		return false, 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sent := l.now()
	data, ver, err := sw.GetVersion(ctx, l.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return l.create(ctx, sent)
	}
	if err != nil {
		return l.current(), l.gen, fmt.Errorf("read lease %s: %w", l.Key, err)
	}
	rec, err := Decode(data)
	if err != nil {
		return l.current(), l.gen, fmt.Errorf("lease %s: %w", l.Key, err)
	}
	switch {
	case l.held && ver == l.version:
		return l.write(ctx, sw, ver, Record{Holder: l.Holder, Generation: l.gen, Renewals: rec.Renewals + 1}, sent)
	case l.held:
		// Someone else wrote it: ours ended.
		l.lose("another holder took it", rec)
		return false, 0, nil
	case rec.Holder == "":
		return l.write(ctx, sw, ver, Record{Holder: l.Holder, Generation: rec.Generation + 1}, sent)
	case ver != l.seen:
		l.seen, l.seenAt = ver, sent
		return false, 0, nil
	case sent.Sub(l.seenAt) >= l.TTL:
		return l.write(ctx, sw, ver, Record{Holder: l.Holder, Generation: rec.Generation + 1}, sent)
	}
	return false, 0, nil
}

// current reports a hold still valid.
func (l *Lease) current() bool { return l.held && l.now().Before(l.validUntil) }

// create takes a free key.
func (l *Lease) create(ctx context.Context, sent time.Time) (bool, uint64, error) {
	rec := Record{Holder: l.Holder, Generation: 1, TTLMillis: l.TTL.Milliseconds(), Written: time.Now().UTC()}
	b, _ := json.Marshal(rec)
	err := storage.PutIfAbsent(ctx, l.Store, l.Key, bytes.NewReader(b))
	if errors.Is(err, storage.ErrExists) {
		return false, 0, nil // another took it first: observe it next time
	}
	if err != nil {
		return false, 0, fmt.Errorf("create lease %s: %w", l.Key, err)
	}
	sw, _ := storage.AsSwapper(l.Store)
	_, ver, err := sw.GetVersion(ctx, l.Key)
	if err != nil {
		return false, 0, fmt.Errorf("read back lease %s: %w", l.Key, err)
	}
	l.gain(rec, ver, sent)
	return true, rec.Generation, nil
}

// write swaps the lease object from ver to rec.
func (l *Lease) write(ctx context.Context, sw storage.Swapper, ver string, rec Record, sent time.Time) (bool, uint64, error) {
	rec.TTLMillis, rec.Written = l.TTL.Milliseconds(), time.Now().UTC()
	b, _ := json.Marshal(rec)
	nv, err := sw.PutIfVersion(ctx, l.Key, b, ver)
	if errors.Is(err, storage.ErrChanged) {
		// Lost the race, or a retried request that had succeeded: the
		// object says which.
		data, cur, rerr := sw.GetVersion(ctx, l.Key)
		if got, derr := Decode(data); rerr == nil && derr == nil && got.Holder == l.Holder && got.Generation == rec.Generation && got.Renewals == rec.Renewals {
			l.gain(rec, cur, sent)
			return true, rec.Generation, nil
		}
		if l.held {
			l.lose("another holder wrote it", rec)
		}
		return false, 0, nil
	}
	if err != nil {
		return l.current(), l.gen, fmt.Errorf("write lease %s: %w", l.Key, err)
	}
	l.gain(rec, nv, sent)
	return true, rec.Generation, nil
}

func (l *Lease) gain(rec Record, ver string, sent time.Time) {
	if !l.held && l.Log != nil {
		l.Log.Info("took the lease", "lease", l.Key, "holder", l.Holder, "generation", rec.Generation)
	}
	l.held, l.gen, l.rec, l.version, l.validUntil = true, rec.Generation, rec, ver, sent.Add(l.validity())
	l.seen = ""
}

func (l *Lease) lose(why string, rec Record) {
	if l.Log != nil {
		l.Log.Warn("lost the lease", "lease", l.Key, "holder", l.Holder, "generation", l.gen, "why", why, "now_held_by", rec.Holder)
	}
	l.held, l.gen, l.version = false, 0, ""
}

// Release gives the lease up at once (a clean stop): observers take it at
// their next attempt instead of waiting out the TTL.
func (l *Lease) Release(ctx context.Context) error {
	sw, err := storage.AsSwapper(l.Store)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return nil
	}
	rec := Record{Holder: "", Generation: l.gen, Renewals: l.rec.Renewals + 1, TTLMillis: l.TTL.Milliseconds(), Written: time.Now().UTC()}
	b, _ := json.Marshal(rec)
	l.held = false
	if _, err := sw.PutIfVersion(ctx, l.Key, b, l.version); err != nil && !errors.Is(err, storage.ErrChanged) {
		return fmt.Errorf("release lease %s: %w", l.Key, err)
	}
	return nil
}
