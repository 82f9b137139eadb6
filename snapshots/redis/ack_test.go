package redis_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
)

// gatedStore holds every Put while blocked.
type gatedStore struct {
	storage.Store
	mu   sync.Mutex
	open chan struct{} // nil: not blocked
}

func (g *gatedStore) block() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *gatedStore) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.open)
	g.open = nil
}

func (g *gatedStore) Put(ctx context.Context, key string, r io.Reader) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if open != nil {
		select {
		case <-open:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Store.Put(ctx, key, r)
}

// The primary sees drkit's real position: REPLCONF ACK reports what the
// required region holds, so WAIT counts drd only once that region stores
// the write, while the other region already does.
func TestAckIsWhatTheRequiredRegionHolds(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	gate := &gatedStore{Store: e.regions[1].Store}
	e.regions[1] = &storage.Region{Name: "us", Store: gate, Pipeline: &storage.Pipeline{Store: gate, Region: "us", Level: 1}}
	e.required = []string{"us"}
	e.ship(t)
	e.c.Set(ctx, "before", 1, 0)
	e.waitShipped(t)
	if n, err := e.c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 with both regions up: %d, %v; want drd counted", n, err)
	}

	gate.block()
	e.c.Set(ctx, "while-us-is-blocked", 1, 0)
	want := offset(t, e.c)
	testenv.WaitFor(t, 10*time.Second, "region eu holds the write", func() bool { return sawEnd(t, e.regions[0]) >= want })
	if n, err := e.c.Wait(ctx, 1, 1500*time.Millisecond).Result(); err != nil || n != 0 {
		t.Errorf("WAIT 1 while the required region cannot store: %d, %v; want 0 (drd must not acknowledge it)", n, err)
	}
	gate.release()
	if n, err := e.c.Wait(ctx, 1, 10*time.Second).Result(); err != nil || n != 1 {
		t.Errorf("WAIT 1 after the required region stored it: %d, %v; want 1", n, err)
	}
}

// A wrong password is named as such, without the password.
func TestWrongPasswordIsClear(t *testing.T) {
	src := &testenv.Redis{Password: "right-one"}
	testenv.Start(t, src)
	e := newEnv(t)
	dsn := fmt.Sprintf("redis://:%s@%s", "wrong-one", src.Addr())
	_, err := rdwal.Backup(context.Background(), dsn, e.regions, "cache")
	if err == nil || !strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), "wrong-one") {
		t.Fatalf("backup with a wrong password: %v; want an authentication error without the password", err)
	}
}
