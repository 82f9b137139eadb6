package mysql

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// stuckStore holds every binlog chunk upload while stuck is set, until the
// upload's context ends: a region that cannot take writes right now.
type stuckStore struct {
	storage.Store
	stuck atomic.Bool
}

func (s *stuckStore) Put(ctx context.Context, key string, r io.Reader) error {
	if s.stuck.Load() && strings.Contains(key, "/binlog/") {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Store.Put(ctx, key, r)
}

// TestRunAgainAfterALostLeaseHasNoGap: under drd.ha a shipper's Run ends
// when the lease is lost, and its writers drop what they had queued; when
// the lease comes back, the next Run must start from what the region holds.
// It used to start after the transactions handed to the dropped writers, and
// the region's next chunk went on from its end without them: a gap no chunk
// header showed (a restore replayed without an error and missed the rows).
func TestRunAgainAfterALostLeaseHasNoGap(t *testing.T) {
	m := testenv.StartMariaDB(t)
	db := m.Open(t, "")
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	fs, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &stuckStore{Store: fs}
	c := &Catalog{Pipeline: &storage.Pipeline{Store: st, Region: "us", Level: 1}, Cluster: "shop"}
	sh := &Shipper{Cluster: "shop", DSN: m.DSN(""), ServerID: 90000 + m.ServerID, FlushInterval: 100 * time.Millisecond,
		Log: testenv.Logger(t), Targets: []*Target{{Catalog: c}}}
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = sh.Run(ctx); close(done) }()
		return func() { cancel(); <-done }
	}
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			testenv.Exec(t, db, fmt.Sprintf("INSERT INTO shop.t VALUES (%d)", i))
		}
	}
	stop := run()
	testenv.WaitFor(t, 20*time.Second, "the shipper streams", func() bool { return sh.Ready() == nil })
	insert(0, 3)
	waitShipped(t, sh, gtidPos(t, db, "gtid_binlog_pos"))
	st.stuck.Store(true)
	insert(3, 6)
	handed := gtidPos(t, db, "gtid_binlog_pos")
	testenv.WaitFor(t, 10*time.Second, "the stream hands the new transactions to the region's writer", func() bool {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return sh.pos.Covers(handed)
	})
	stop() // the lease is lost: the writer drops its queued batch
	st.stuck.Store(false)
	stop = run() // the lease comes back
	defer stop()
	insert(6, 7)
	want := gtidPos(t, db, "gtid_binlog_pos")
	waitShipped(t, sh, want)
	rep, err := Verify(context.Background(), c, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Txns != 7 || rep.End != want.String() || len(rep.Problems) > 0 {
		t.Fatalf("the region holds %d transactions up to %s (problems %q); want all 7 inserts up to %s", rep.Txns, rep.End, rep.Problems, want)
	}
}
