package redis_test

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	rdsnap "github.com/drkit/drkit/snapshots/redis"
)

// drd is stopped while more is written than the primary's backlog holds:
// the next start gets +FULLRESYNC and stores a new base. Verify names the
// gap after the older base's stream, and a restore of the newest equals
// the source. A region that then lacks the new base holds stream that no
// base reaches: verify names those chunks too.
func TestFullResyncGapIsNamed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if err := e.c.ConfigSet(ctx, "repl-backlog-size", "16384").Err(); err != nil {
		t.Fatal(err)
	}
	e.ship(t)
	e.c.Set(ctx, "before", 1, 0)
	e.waitShipped(t)
	e.stop()
	pad := strings.Repeat("x", 1000)
	for i := range 200 { // 200 KB: far more than the backlog's 16 KB
		e.c.Set(ctx, "pause"+strconv.Itoa(i), pad, 0)
	}
	e.ship(t)
	e.c.Set(ctx, "after", 1, 0)
	e.waitShipped(t)
	time.Sleep(2 * flushInterval)

	rep, err := rdsnap.Verify(ctx, e.regions[0].Pipeline, "cache", false, nil)
	if err != nil || len(rep.Backups) != 2 || !has(rep.Problems, "is missing") {
		t.Fatalf("verify after a full resync: %+v, %v; want two backups and the gap named", rep, err)
	}
	want := dataset(t, e.src)
	dst, _ := e.restore(t, 0, time.Time{}, "")
	if got := dataset(t, dst); !maps.Equal(got, want) {
		t.Fatalf("restore of the newest differs in %v", diff(got, want))
	}

	// Region us loses the new base's manifest.
	bases, _, err := rdwal.ListBases(ctx, e.regions[1].Pipeline, "cache")
	if err != nil || len(bases) != 2 {
		t.Fatalf("bases in us: %d, %v", len(bases), err)
	}
	if err := e.regions[1].Store.Delete(ctx, snapshots.BaseKey("cache", bases[1].ID, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	rep, err = rdsnap.Verify(ctx, e.regions[1].Pipeline, "cache", false, nil)
	if err != nil || rep.OK || !has(rep.Problems, "reached from no base backup") {
		t.Fatalf("verify of a region without the newest base: %+v, %v; want its unreached stream named", rep, err)
	}
}

func has(problems []string, s string) bool {
	for _, p := range problems {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

// drd pointed at another primary (a new history: +FULLRESYNC under a new
// replid) stores a new base; verify names the break between the two
// histories (it said nothing of it before), and a restore of the newest
// base holds the new primary's data, nothing of the old one's.
func TestNewHistoryIsNamed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ship(t)
	e.c.Set(ctx, "old", 1, 0)
	e.waitShipped(t)
	time.Sleep(2 * flushInterval)
	e.stop()
	e.src = testenv.StartRedis(t)
	e.c = e.src.Client(t)
	e.c.Set(ctx, "new", 1, 0)
	e.ship(t)
	e.c.Set(ctx, "after", 1, 0)
	e.waitShipped(t)
	rep, err := rdsnap.Verify(ctx, e.regions[0].Pipeline, "cache", false, nil)
	if err != nil || len(rep.Backups) != 2 || !has(rep.Problems, "after a full resync, is missing") {
		t.Fatalf("verify after a new history: %+v, %v; want two backups and the break named", rep, err)
	}
	dst, _ := e.restore(t, 0, time.Time{}, "")
	if got, want := dataset(t, dst), dataset(t, e.src); !maps.Equal(got, want) {
		t.Fatalf("restore of the newest differs in %v", diff(got, want))
	}
}
