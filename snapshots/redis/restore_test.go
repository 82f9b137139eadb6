package redis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/redisinfo"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	rdsnap "github.com/drkit/drkit/snapshots/redis"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

const flushInterval = 200 * time.Millisecond

// env is a Redis primary whose stream drd ships into regions eu and us.
type env struct {
	src     *testenv.Redis
	c       *goredis.Client
	regions []*storage.Region
	sh      *rdwal.Shipper
	stop    func()
	// required are the regions REPLCONF ACK waits for (none: all).
	required []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{src: testenv.StartRedis(t)}
	e.c = e.src.Client(t)
	for _, name := range []string{"eu", "us"} {
		st, err := file.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e.regions = append(e.regions, &storage.Region{Name: name, Store: st, Pipeline: &storage.Pipeline{Store: st, Region: name, Level: 1}})
	}
	return e
}

// ship runs drd's shipper until e.stop.
func (e *env) ship(t *testing.T) {
	t.Helper()
	e.sh = &rdwal.Shipper{Cluster: "cache", DSN: e.src.URL(), Regions: e.regions, FlushInterval: flushInterval, Log: testenv.Logger(t), Required: e.required}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.sh.Run(ctx) }()
	stopped := false
	e.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(e.stop)
	testenv.WaitFor(t, 30*time.Second, "the shipper streams", func() bool { return e.sh.Ready() == nil })
}

// waitShipped waits until every region holds the primary's current offset.
func (e *env) waitShipped(t *testing.T) {
	t.Helper()
	want := offset(t, e.c)
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("the regions hold offset %d", want), func() bool { return e.sh.Durable().End >= want })
}

func offset(t *testing.T, c *goredis.Client) int64 {
	t.Helper()
	rep, err := redisinfo.Get(context.Background(), c, "replication")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(rep["master_repl_offset"], 10, 64)
	if err != nil {
		t.Fatalf("master_repl_offset: %v", err)
	}
	return n
}

func (e *env) restore(t *testing.T, region int, stop time.Time, backup string) (*testenv.Redis, rdsnap.RestoreResult) {
	t.Helper()
	dst := testenv.StartRedis(t)
	res, err := rdsnap.Restore(context.Background(), rdsnap.RestoreOptions{Cluster: "cache", Region: e.regions[region], TargetDSN: dst.URL(), Stop: stop, BackupID: backup, Log: testenv.Logger(t)})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dst.Dir, "redis.log"))
		t.Fatalf("restore from region %s: %v\ntarget's log:\n%s", e.regions[region].Name, err, log)
	}
	return dst, res
}

// diff names the keys whose dump differs.
func diff(got, want map[string]string) []string {
	var out []string
	for k, v := range want {
		if got[k] != v {
			out = append(out, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, k+" (extra)")
		}
	}
	slices.Sort(out)
	return out
}

// value is a key's value: members sorted for sets and hashes (a hash
// table's DUMP follows the process's random hash seed), DUMP otherwise.
func value(t *testing.T, c *goredis.Client, k string) string {
	t.Helper()
	ctx := context.Background()
	switch typ := c.Type(ctx, k).Val(); typ {
	case "set":
		m := c.SMembers(ctx, k).Val()
		slices.Sort(m)
		return fmt.Sprint("set ", m)
	case "hash":
		m := c.HGetAll(ctx, k).Val()
		return fmt.Sprint("hash ", m) // fmt prints maps sorted
	default:
		d, err := c.Dump(ctx, k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		return fmt.Sprintf("%s %x", typ, d)
	}
}

// dataset is every key of databases 0..3 with its value and its absolute
// expiry (PEXPIRETIME: Redis 7 propagates expiries as absolute times, so a
// restore keeps them to the millisecond; -1 for none).
func dataset(t *testing.T, r *testenv.Redis) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for db := range 4 {
		c := goredis.NewClient(&goredis.Options{Addr: r.Addr(), Password: r.Password, DB: db})
		keys, err := c.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			at, err := c.Do(ctx, "PEXPIRETIME", k).Int64()
			if err != nil {
				t.Fatalf("PEXPIRETIME %s: %v", k, err)
			}
			out[fmt.Sprintf("%d/%s", db, k)] = fmt.Sprintf("%s expires=%d", value(t, c, k), at)
		}
		c.Close()
	}
	return out
}

// Every type and the commands that shape the stream (MULTI/EXEC, Lua,
// SELECT, FLUSHDB, expiries) restore equal to the source, from region us
// alone, after drd was stopped and resumed (+CONTINUE, no gap) in between;
// a base taken by Backup (drctl backup) restores too.
func TestRestoreEveryTypeAcrossAResume(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.c
	c.Set(ctx, "before", "the base", 0)
	e.ship(t)
	c.Set(ctx, "s", "string", 0)
	c.HSet(ctx, "h", "a", 1, "b", 2)
	c.RPush(ctx, "l", 1, 2, 3)
	c.SAdd(ctx, "set", "x", "y")
	c.ZAdd(ctx, "z", goredis.Z{Score: 1, Member: "one"}, goredis.Z{Score: 2, Member: "two"})
	c.XAdd(ctx, &goredis.XAddArgs{Stream: "st", Values: []string{"f", "v"}})
	c.Set(ctx, "ttl", "expires", time.Hour)
	_, err := c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Incr(ctx, "counter")
		p.Incr(ctx, "counter")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Eval(ctx, "redis.call('SET', KEYS[1], ARGV[1]); redis.call('LPUSH', KEYS[2], ARGV[1])", []string{"lua", "l"}, "from-lua")
	db2 := goredis.NewClient(&goredis.Options{Addr: e.src.Addr(), DB: 2})
	defer db2.Close()
	db2.Set(ctx, "in-db2", "v", 0)
	db3 := goredis.NewClient(&goredis.Options{Addr: e.src.Addr(), DB: 3})
	defer db3.Close()
	db3.Set(ctx, "gone", "v", 0)
	db3.FlushDB(ctx)
	e.waitShipped(t)

	e.stop()
	c.Set(ctx, "while-stopped", "1", 0)
	c.XTrimMaxLen(ctx, "st", 0)
	db2.HSet(ctx, "h2", "k", "v")
	e.ship(t)
	c.Set(ctx, "after-resume", "1", 0)
	e.waitShipped(t)

	bases, _, err := rdwal.ListBases(ctx, e.regions[1].Pipeline, "cache")
	if err != nil || len(bases) != 1 {
		t.Fatalf("bases after a resume: %d, %v; want the first full resync's only (+CONTINUE)", len(bases), err)
	}
	want, wantOff := dataset(t, e.src), offset(t, c)
	dst, res := e.restore(t, 1, time.Time{}, "")
	if got := dataset(t, dst); !maps.Equal(got, want) {
		t.Fatalf("restored dataset differs in %v", diff(got, want))
	}
	if res.Offset < wantOff {
		t.Errorf("restore stands at offset %d, short of the %d the regions held", res.Offset, wantOff)
	}

	// The disk-based form of the RDB transfer ($<length> after the RDB is
	// written to the primary's disk), not Redis 7's diskless default.
	if err := c.ConfigSet(ctx, "repl-diskless-sync", "no").Err(); err != nil {
		t.Fatal(err)
	}
	b, err := rdwal.Backup(ctx, e.src.URL(), e.regions, "cache")
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	c.Set(ctx, "after-backup", "1", 0)
	e.waitShipped(t)
	want = dataset(t, e.src)
	dst, _ = e.restore(t, 0, time.Time{}, b.ID)
	if got := dataset(t, dst); !maps.Equal(got, want) {
		t.Fatalf("restore from the backup %s differs in %v", b.ID, diff(got, want))
	}
}

// Point in time: keys stamped every 100 ms; a restore to a time between
// two stamps holds exactly the stamps written at or before it.
func TestRestoreToATime(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ship(t)
	var stamps []time.Time
	for i := range 20 {
		if i == 5 {
			// Expired before the target time: it stays expired in the
			// restore; the hour-long one keeps its absolute expiry.
			e.c.Set(ctx, "short", 1, 300*time.Millisecond)
			e.c.Set(ctx, "long", 1, time.Hour)
		}
		at := time.Now()
		if err := e.c.Set(ctx, "stamp:"+strconv.Itoa(i), at.UnixMilli(), 0).Err(); err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, at)
		time.Sleep(100 * time.Millisecond)
	}
	e.waitShipped(t)
	target := stamps[12].Add(50 * time.Millisecond)
	dst, res := e.restore(t, 1, target, "")
	got := dataset(t, dst)
	if v, ok := got["0/short"]; ok {
		t.Errorf("a key that expired 0.5 s before the target time was restored: %s", v)
	}
	if v, want := got["0/long"], dataset(t, e.src)["0/long"]; v != want {
		t.Errorf("a key with an hour's expiry restored as %q, want %q", v, want)
	}
	for i := range stamps {
		_, ok := got["0/stamp:"+strconv.Itoa(i)]
		if want := i <= 12; ok != want {
			t.Errorf("stamp %d written %s: restored %v, want %v (target %s, %d commands replayed)", i, stamps[i].Format("15:04:05.000"), ok, want, target.Format("15:04:05.000"), res.Commands)
		}
	}
	// A time past what the region holds is refused before anything loads.
	dst2 := testenv.StartRedis(t)
	_, err := rdsnap.Restore(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: e.regions[1], TargetDSN: dst2.URL(), Stop: time.Now().Add(time.Hour), Log: testenv.Logger(t)})
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("restore to an hour from now: %v; want not found", err)
	}
	// A target with a key is refused, and keeps it.
	dst2.Client(t).Set(ctx, "mine", "1", 0)
	_, err = rdsnap.Restore(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: e.regions[1], TargetDSN: dst2.URL(), Log: testenv.Logger(t)})
	if err == nil || dst2.Client(t).Get(ctx, "mine").Val() != "1" {
		t.Errorf("restore into a non-empty target: %v; want a refusal that changes nothing", err)
	}
}

// A backup-set copy into a region drd never shipped to restores there alone.
func TestCopyThenRestoreFromTheCopy(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ship(t)
	for i := range 5 {
		e.c.Set(ctx, "k"+strconv.Itoa(i), i, 0)
		time.Sleep(2 * flushInterval)
	}
	e.waitShipped(t)
	time.Sleep(500 * time.Millisecond) // the copy stores the chunks well after drd sealed them
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ap := &storage.Region{Name: "ap", Store: st, Pipeline: &storage.Pipeline{Store: st, Region: "ap", Level: 1}}
	layout, err := snapshots.LayoutFor("redis")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := snapshots.CopySet(ctx, "cache", e.regions[0], ap, layout, snapshots.CopyOptions{Log: testenv.Logger(t)})
	if err != nil || len(rep.Backups) != 1 || rep.LogObjects == 0 {
		t.Fatalf("copy: %+v, %v", rep, err)
	}
	e.regions = append(e.regions, ap)
	want := dataset(t, e.src)
	dst, _ := e.restore(t, 2, time.Time{}, "")
	if got := dataset(t, dst); !maps.Equal(got, want) {
		t.Fatalf("restore from the copy differs in %v", diff(got, want))
	}
	// Without its last chunk, the copy holds the stream to when drd sealed
	// the chunk before, not to when the copy stored that one: a time
	// between the two is refused, since commands drd received after the
	// seal (the lost chunk's) are missing from the region.
	refs, err := (&rdwal.Catalog{Pipeline: ap.Pipeline, Cluster: "cache"}).List(ctx)
	if err != nil || len(refs) < 2 {
		t.Fatalf("the copy's chunks: %d, %v", len(refs), err)
	}
	last := refs[len(refs)-1]
	if err := ap.Store.Delete(ctx, last.Object.Key); err != nil {
		t.Fatal(err)
	}
	target := time.UnixMilli(last.LastMS) // the lost chunk's write, before the copy
	dst2 := testenv.StartRedis(t)
	_, err = rdsnap.Restore(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: ap, TargetDSN: dst2.URL(), Stop: target, Log: testenv.Logger(t)})
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("restore from the copy to %s (its last chunk sealed %s, stored by the copy later): %v; want the time refused",
			target.Format("15:04:05.000"), refs[len(refs)-2].Sealed.Format("15:04:05.000"), err)
	}
}

// A failover: a replica promoted (PSYNC2 gives it a new replication id and
// keeps its primary's offsets) and drd pointed at it continues the same
// history with +CONTINUE, no new base; a restore from the base before the
// failover rolls forward across it.
func TestFailoverContinuesTheHistory(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	rep := e.src.StartReplica(t)
	e.ship(t)
	e.c.Set(ctx, "before", "1", 0)
	e.c.HSet(ctx, "h", "a", "1")
	e.waitShipped(t)
	testenv.WaitFor(t, 10*time.Second, "the replica has the primary's writes", func() bool { return offset(t, rep.Client(t)) >= offset(t, e.c) })
	e.stop()
	if err := rep.Client(t).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	e.src, e.c = rep, rep.Client(t)
	e.ship(t) // drd's dsn now names the promoted server
	e.c.Set(ctx, "after", "2", 0)
	e.c.HSet(ctx, "h", "b", "2")
	e.waitShipped(t)
	if bases, _, _ := rdwal.ListBases(ctx, e.regions[1].Pipeline, "cache"); len(bases) != 1 {
		t.Fatalf("%d bases after the failover; want the first only (+CONTINUE, no full resync)", len(bases))
	}
	want := dataset(t, rep)
	dst, _ := e.restore(t, 1, time.Time{}, "")
	if got := dataset(t, dst); !maps.Equal(got, want) {
		t.Fatalf("restore across the failover differs in %v", diff(got, want))
	}
}

// --target-dir: a folder redis-server loads natively (RDB base and an
// incremental AOF with #TS: annotations), to a point in time.
func TestRestoreDirToATime(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ship(t)
	var stamps []time.Time
	for i := range 10 {
		stamps = append(stamps, time.Now())
		e.c.Set(ctx, "stamp:"+strconv.Itoa(i), i, 0)
		db2 := goredisClient(e.src, 2)
		db2.HSet(ctx, "h", strconv.Itoa(i), i)
		db2.Close()
		time.Sleep(100 * time.Millisecond)
	}
	e.waitShipped(t)
	dir := filepath.Join(t.TempDir(), "restored")
	target := stamps[6].Add(50 * time.Millisecond)
	res, err := rdsnap.RestoreDir(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: e.regions[1], Stop: target, Log: testenv.Logger(t)}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if aof, _ := os.ReadFile(filepath.Join(dir, "appendonlydir", "appendonly.aof.1.incr.aof")); !strings.Contains(string(aof), "#TS:") {
		t.Errorf("the incremental AOF has no #TS: annotation")
	}
	port := testenv.FreePort(t)
	srv := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir,
		"--appendonly", "yes", "--appenddirname", "appendonlydir", "--appendfilename", "appendonly.aof")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer c.Close()
	testenv.WaitFor(t, 10*time.Second, "redis-server loads the folder", func() bool { return c.Ping(ctx).Err() == nil })
	for i := range stamps {
		ok := c.Exists(ctx, "stamp:"+strconv.Itoa(i)).Val() == 1
		if want := i <= 6; ok != want {
			t.Errorf("stamp %d: restored %v, want %v (%s; %d commands)", i, ok, want, res.Command, res.Commands)
		}
	}
	db2 := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), DB: 2})
	defer db2.Close()
	if n := db2.HLen(ctx, "h").Val(); n != 7 {
		t.Errorf("db 2's hash has %d fields, want 7", n)
	}
	if _, err := rdsnap.RestoreDir(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: e.regions[1], Log: testenv.Logger(t)}, dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a second restore into the folder: %v, want a refusal", err)
	}
}

func goredisClient(r *testenv.Redis, db int) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: r.Addr(), Password: r.Password, DB: db})
}

// Only the target takes the data: a peer that reaches drctl's replication
// listener without the target's one-time masterauth gets nothing, and the
// restore goes on with the target.
func TestRestoreRefusesAForeignPeer(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ship(t)
	e.c.Set(ctx, "secret", "1", 0)
	e.waitShipped(t)
	listen := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	got := make(chan []byte, 1)
	go func() {
		for range 5000 {
			c, err := net.Dial("tcp", listen)
			if err != nil {
				time.Sleep(time.Millisecond)
				continue
			}
			defer c.Close()
			c.Write([]byte("*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			got <- b
			return
		}
		got <- nil
	}()
	dst := testenv.StartRedis(t)
	_, err := rdsnap.Restore(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: e.regions[0], TargetDSN: dst.URL(), Listen: listen, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("restore with a foreign peer at the listener: %v", err)
	}
	if dst.Client(t).Get(ctx, "secret").Val() != "1" {
		t.Error("the target lacks the restored key")
	}
	if b := <-got; bytes.Contains(b, []byte("FULLRESYNC")) || bytes.Contains(b, []byte("secret")) {
		t.Fatalf("the foreign peer received %q", b)
	}
	if v, _ := dst.Client(t).ConfigGet(ctx, "masterauth").Result(); v["masterauth"] != "" {
		t.Errorf("the target keeps the one-time masterauth %q", v["masterauth"])
	}
}
