package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func fileStore(t *testing.T) storage.Store {
	t.Helper()
	s, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const ttl = 10 * time.Second

func newLease(s storage.Store, holder string, c *clock) *Lease {
	return &Lease{Store: s, Key: "_drkit/leases/orders.json", Holder: holder, TTL: ttl, Now: c.now}
}

func try(t *testing.T, l *Lease) (bool, uint64) {
	t.Helper()
	held, gen, err := l.Try(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return held, gen
}

// An observer takes the lease only after seeing its object unchanged for a
// whole TTL on its own clock; by then the paused holder has stopped (its
// validity is 9/10 of a TTL from its last renewal), and it finds the lease
// taken when it wakes up; the generation grows with the change of holder.
func TestTakeoverAfterATTLOnTheObserversClock(t *testing.T) {
	s, c := fileStore(t), &clock{t: time.Unix(1000, 0)}
	a, b := newLease(s, "a", c), newLease(s, "b", c)
	if held, gen := try(t, a); !held || gen != 1 {
		t.Fatalf("a on a free key: held %v gen %d", held, gen)
	}
	if held, _ := try(t, b); held {
		t.Fatal("b took a held lease")
	}
	c.add(ttl / 2)
	if held, _ := try(t, a); !held { // renewal: a new version
		t.Fatal("a could not renew")
	}
	c.add(ttl / 2)
	if held, _ := try(t, b); held { // b sees the renewal: its wait restarts
		t.Fatal("b took the lease a TTL after it first saw it, though it was renewed meanwhile")
	}
	// a pauses (no renewal) from here.
	c.add(ttl * 9 / 10)
	if held, _ := a.Held(); held {
		t.Fatal("a still holds 9/10 of a TTL after its last renewal")
	}
	if held, _ := try(t, b); held {
		t.Fatal("b took the lease before seeing it unchanged for a TTL")
	}
	c.add(ttl / 10)
	held, gen := try(t, b)
	if !held || gen != 2 {
		t.Fatalf("b after a TTL without renewal: held %v gen %d, want the lease at generation 2", held, gen)
	}
	if held, _ := try(t, a); held {
		t.Fatal("a, waking up, still holds the lease b took")
	}
	if held, gen := b.Held(); !held || gen != 2 {
		t.Fatalf("b: %v %d", held, gen)
	}
}

// A released lease is taken at once, at the next generation.
func TestReleaseLetsAnotherTakeAtOnce(t *testing.T) {
	s, c := fileStore(t), &clock{t: time.Unix(1000, 0)}
	a, b := newLease(s, "a", c), newLease(s, "b", c)
	try(t, a)
	try(t, b)
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if held, _ := a.Held(); held {
		t.Fatal("a holds after releasing")
	}
	if held, gen := try(t, b); !held || gen != 2 {
		t.Fatalf("b after the release: held %v gen %d", held, gen)
	}
}

// Of contenders that all saw the lease expire, exactly one takes it.
func TestOneOfRacingContendersWins(t *testing.T) {
	s, c := fileStore(t), &clock{t: time.Unix(1000, 0)}
	try(t, newLease(s, "old", c))
	var ls []*Lease
	for i := range 6 {
		l := newLease(s, fmt.Sprintf("c%d", i), c)
		try(t, l)
		ls = append(ls, l)
	}
	c.add(ttl)
	var won atomic.Int32
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() {
			if held, _, err := l.Try(context.Background()); err != nil {
				t.Error(err)
			} else if held {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d contenders took the lease, want 1", won.Load())
	}
}

// flaky fails every read and write while down is set.
type flaky struct {
	storage.Store
	down *atomic.Bool
}

var errDown = errors.New("store unreachable")

func (f flaky) GetVersion(ctx context.Context, key string) ([]byte, string, error) {
	if f.down.Load() {
		return nil, "", errDown
	}
	return f.Store.(storage.Swapper).GetVersion(ctx, key)
}

func (f flaky) PutIfVersion(ctx context.Context, key string, data []byte, v string) (string, error) {
	if f.down.Load() {
		return "", errDown
	}
	return f.Store.(storage.Swapper).PutIfVersion(ctx, key, data, v)
}

func (f flaky) PutIfAbsent(ctx context.Context, key string, r io.Reader) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.(storage.ExclusiveCreator).PutIfAbsent(ctx, key, r)
}

// Run: the holder cut off from the store stops its work before the other
// drd starts its own (the two never work at once), and the other takes
// over within about a TTL and a half of the last renewal.
func TestRunStopsWorkBeforeTheTakeover(t *testing.T) {
	s := fileStore(t)
	var down atomic.Bool
	const ttl = 400 * time.Millisecond
	a := &Lease{Store: flaky{Store: s, down: &down}, Key: "l.json", Holder: "a", TTL: ttl}
	b := &Lease{Store: s, Key: "l.json", Holder: "b", TTL: ttl}
	var mu sync.Mutex
	var aEnd, bStart time.Time
	var aGen, bGen uint64
	aWorking := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		a.Run(ctx, func(ctx context.Context, gen uint64) {
			aGen = gen
			close(aWorking)
			<-ctx.Done()
			mu.Lock()
			aEnd = time.Now()
			mu.Unlock()
		})
	})
	<-aWorking
	bWorking := make(chan struct{})
	wg.Go(func() {
		b.Run(ctx, func(ctx context.Context, gen uint64) {
			mu.Lock()
			bStart, bGen = time.Now(), gen
			mu.Unlock()
			close(bWorking)
			<-ctx.Done()
		})
	})
	time.Sleep(ttl) // b observes a renewing
	cut := time.Now()
	down.Store(true)
	select {
	case <-bWorking:
	case <-time.After(10 * ttl):
		t.Fatal("b did not take over")
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if aEnd.IsZero() || !aEnd.Before(bStart) {
		t.Fatalf("a's work ended at %v, b's began at %v: they overlapped", aEnd, bStart)
	}
	if aGen != 1 || bGen != 2 {
		t.Errorf("generations a %d, b %d; want 1 and 2", aGen, bGen)
	}
	if d := bStart.Sub(cut); d > 2*ttl {
		t.Errorf("b took over %v after a was cut off, want within about a TTL and a half (%v)", d, ttl*3/2)
	}
}

// TestRunRestartsWorkAfterALateRenewal: the store does not answer for longer
// than the hold is valid, so the work stops; then it answers, no one else
// took the lease, and the renewal goes through. The work must start again:
// the holder used to keep renewing with nothing running.
func TestRunRestartsWorkAfterALateRenewal(t *testing.T) {
	s := fileStore(t)
	var down atomic.Bool
	const ttl = 300 * time.Millisecond
	a := &Lease{Store: flaky{Store: s, down: &down}, Key: "l.json", Holder: "a", TTL: ttl}
	var starts atomic.Int32
	ended := make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx, func(ctx context.Context, gen uint64) {
		starts.Add(1)
		<-ctx.Done()
		ended <- struct{}{}
	})
	deadline := time.Now().Add(10 * ttl)
	for starts.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	down.Store(true)
	select {
	case <-ended:
	case <-time.After(5 * ttl):
		t.Fatal("the work went on although the lease could not be renewed")
	}
	down.Store(false)
	deadline = time.Now().Add(5 * ttl)
	for starts.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if held, _ := a.Held(); !held || starts.Load() < 2 {
		t.Fatalf("after the store answered again: held %v, the work started %d times; want held and started again", held, starts.Load())
	}
}
