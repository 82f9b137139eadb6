package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/drkit/drkit/internal/drill"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/monitor"
	mgmon "github.com/drkit/drkit/monitor/mongodb"
	rdmon "github.com/drkit/drkit/monitor/redis"
)

// beat runs drd's heartbeat writer against the primary every 100 ms until
// the test ends, as drd does (every second) for clusters it monitors.
func beat(t *testing.T, h monitor.Heartbeater) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := h.Beat(ctx, time.Now()); err != nil && ctx.Err() == nil {
				t.Errorf("heartbeat: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; h.Close() })
}

// runDrill runs drctl drill --json and decodes its report.
func runDrill(t *testing.T, cfgPath, cluster, region, root string) (int, drill.Report, string) {
	t.Helper()
	code, out, errOut := drctl(t, "drill", "--config", cfgPath, "--cluster", cluster, "--region", region, "--sandbox-dir", root, "--json")
	var rep drill.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("drill --json: %v\n%s%s", err, out, errOut)
	}
	return code, rep, errOut
}

// checkGoodDrill asserts a passing drill's report and that its sandbox is gone.
func checkGoodDrill(t *testing.T, code int, rep drill.Report, errOut, root string, flush time.Duration, wantPhases ...string) {
	t.Helper()
	js, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("drill report:\n%s", js)
	phases := make([]string, len(rep.Phases))
	for i, p := range rep.Phases {
		phases[i] = p.Name
	}
	if code != exitOK || !rep.OK || !slices.Equal(phases, wantPhases) {
		t.Fatalf("drill: exit %d, %s\n%s", code, js, errOut)
	}
	if !strings.HasPrefix(rep.NewestSource, "heartbeat") || rep.RPOSeconds > (2*flush+time.Second).Seconds() || rep.RTOSeconds <= 0 || rep.BytesFetched == 0 {
		t.Errorf("drill measures: RPO %.2f s from %q (want a heartbeat within %s), RTO %.2f s, %d bytes fetched",
			rep.RPOSeconds, rep.NewestSource, 2*flush+time.Second, rep.RTOSeconds, rep.BytesFetched)
	}
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Errorf("the drill left %d sandbox folder(s) in %s", len(left), root)
	}
}

// flipNewest flips a byte in the object under dir with the greatest name
// (stream chunks are named by their zero-padded offsets: the newest offset;
// a modification time would pick a chunk a region's catch-up rewrote) and
// returns its path (flip it again to repair it).
func flipNewest(t *testing.T, dir string) string {
	t.Helper()
	var newest string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if filepath.Base(p) > filepath.Base(newest) {
			newest = p
		}
		return nil
	})
	if err != nil || newest == "" {
		t.Fatalf("no object under %s: %v", dir, err)
	}
	flip(t, newest)
	return newest
}

// flip flips the middle byte of the file at path.
func flip(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDrillRedis: drd ships a Redis primary (its heartbeat written) into
// two regions; drctl drill from region us restores into a throwaway
// redis-server, finds the heartbeat within the flush interval, reports
// every phase and removes its sandbox; a drill SIGKILLed midway leaves its
// redis-server running, and the next drill stops it and removes its folder;
// with a flipped byte in the region's newest stream chunk a drill fails
// (exit 1) naming the object.
func TestDrillRedis(t *testing.T) {
	prim := testenv.StartRedis(t)
	dir, root := t.TempDir(), t.TempDir()
	cfgPath := writeFile(t, fmt.Sprintf("drd:\n  listen: 127.0.0.1:0\nregions:\n  - {name: eu, store: 'file://%[1]s/eu'}\n  - {name: us, store: 'file://%[1]s/us'}\n"+
		"clusters:\n  - {name: cache, engine: redis, region: eu, dsn: '%[2]s', flush_interval: 200ms}\n", dir, prim.URL()))
	testenv.StartDrd(t, cfgPath)
	testenv.WaitFor(t, 30*time.Second, "drd stores a base in region us", func() bool {
		_, out, _ := drctl(t, "backups", "--config", cfgPath, "--cluster", "cache", "--region", "us", "--json")
		return strings.Contains(out, `"id"`)
	})
	h, err := rdmon.NewHeartbeat("drkit_heartbeat:cache", prim.URL())
	if err != nil {
		t.Fatal(err)
	}
	beat(t, h)
	ctx := context.Background()
	for i := range 200 {
		prim.Client(t).Set(ctx, fmt.Sprintf("k%d", i), i, 0)
	}
	time.Sleep(time.Second)
	code, rep, errOut := runDrill(t, cfgPath, "cache", "us", root)
	checkGoodDrill(t, code, rep, errOut, root, 200*time.Millisecond, "choose backup", "sandbox", "fetch base", "fetch log", "replay", "start", "check")
	killMidway(t, cfgPath, root)

	damaged := flipNewest(t, filepath.Join(dir, "us", "cache", "stream"))
	obj := filepath.Base(damaged)
	code, rep, _ = runDrill(t, cfgPath, "cache", "us", root)
	if code != exitFailure || rep.OK || !strings.Contains(rep.Error, strings.SplitN(obj, ".", 2)[0]) {
		t.Errorf("drill with %s damaged: exit %d, ok %v, error %q; want exit 1 naming the object", obj, code, rep.OK, rep.Error)
	}
	flip(t, damaged)
	drillIntoTarget(t, dir, prim, root)
}

// drillIntoTarget drills cluster cache into a redis-server the config names
// (drill.target): it passes and leaves the target empty; a target holding a
// key of its own is refused and keeps it; a target holding what a killed
// drill left (the cluster's heartbeat) is emptied and drilled; the
// cluster's primary is refused as a target and keeps its data.
func drillIntoTarget(t *testing.T, dir string, prim *testenv.Redis, root string) {
	t.Helper()
	ctx := context.Background()
	target := testenv.StartRedis(t)
	tc := target.Client(t)
	cfgFor := func(targetURL string) string {
		return writeFile(t, fmt.Sprintf("regions:\n  - {name: eu, store: 'file://%[1]s/eu'}\n  - {name: us, store: 'file://%[1]s/us'}\n"+
			"clusters:\n  - {name: cache, engine: redis, region: eu, dsn: '%[2]s', drill: {schedule: '@daily', target: '%[3]s'}}\n", dir, prim.URL(), targetURL))
	}
	cfg := cfgFor(target.URL())
	code, rep, errOut := runDrill(t, cfg, "cache", "us", root)
	checkGoodDrill(t, code, rep, errOut, root, 200*time.Millisecond, "choose backup", "sandbox", "fetch base", "fetch log", "replay", "start", "check")
	if n := tc.DBSize(ctx).Val(); n != 0 {
		t.Errorf("the drill left %d key(s) in its target", n)
	}

	tc.Set(ctx, "not-a-drill", "keep me", 0)
	code, rep, _ = runDrill(t, cfg, "cache", "us", root)
	if code != exitFailure || rep.OK || !strings.Contains(rep.Error, "not known to be a drill's") {
		t.Errorf("drill into a target holding a key of its own: exit %d, error %q; want exit 1 refusing it", code, rep.Error)
	}
	if v := tc.Get(ctx, "not-a-drill").Val(); v != "keep me" {
		t.Errorf("the refused drill changed the target's key to %q", v)
	}

	tc.FlushAll(ctx)
	tc.Set(ctx, "drkit_heartbeat:cache", time.Now().UnixMicro(), 0) // what a killed drill leaves
	tc.Set(ctx, "k0", "stale", 0)
	code, rep, errOut = runDrill(t, cfg, "cache", "us", root)
	if code != exitOK || !rep.OK {
		t.Fatalf("drill into a target a killed drill left: exit %d, error %q\n%s", code, rep.Error, errOut)
	}
	if n := tc.DBSize(ctx).Val(); n != 0 {
		t.Errorf("the drill left %d key(s) in its target", n)
	}

	before := prim.Client(t).DBSize(ctx).Val()
	code, rep, _ = runDrill(t, cfgFor(strings.Replace(prim.URL(), "127.0.0.1", "localhost", 1)), "cache", "us", root)
	if code != exitFailure || !strings.Contains(rep.Error, "is its primary") {
		t.Errorf("drill into the cluster's primary: exit %d, error %q; want exit 1 refusing it", code, rep.Error)
	}
	if after := prim.Client(t).DBSize(ctx).Val(); after < before || before == 0 {
		t.Errorf("the primary held %d keys before the refused drill and %d after", before, after)
	}
}

// killMidway SIGKILLs a drctl drill (the real binary) once its sandbox
// server runs, checks that the server outlived it, and that the next drill
// stops that server and removes the folder.
func killMidway(t *testing.T, cfgPath, root string) {
	t.Helper()
	bin := testenv.Binary(t, "drctl")
	for attempt := 0; attempt < 5; attempt++ {
		cmd := exec.Command(bin, "drill", "--config", cfgPath, "--cluster", "cache", "--region", "us", "--sandbox-dir", root)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var pids []byte
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(pids) == 0; time.Sleep(2 * time.Millisecond) {
			found, _ := filepath.Glob(filepath.Join(root, "*", "pids"))
			if len(found) == 1 {
				pids, _ = os.ReadFile(found[0])
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		left, _ := os.ReadDir(root)
		if len(pids) == 0 || len(left) == 0 {
			continue // the drill ended before it could be killed midway
		}
		server, err := strconv.Atoi(strings.Fields(string(pids))[0]) // "<pid> <start ticks> <boot id>"
		if err != nil || !running(server) {
			t.Fatalf("the killed drill's sandbox server (%q) is not running: %v", pids, err)
		}
		code, rep, errOut := runDrill(t, cfgPath, "cache", "us", root)
		if code != exitOK || !rep.OK {
			t.Fatalf("the drill after a killed one: exit %d, %s\n%s", code, rep.Error, errOut)
		}
		if running(server) {
			t.Errorf("the killed drill's redis-server (pid %d) still runs after the next drill", server)
		}
		if left, _ := os.ReadDir(root); len(left) != 0 {
			t.Errorf("%d sandbox folder(s) left after the next drill", len(left))
		}
		return
	}
	t.Fatal("in 5 attempts, no drill could be killed while its sandbox ran")
}

// running reports whether pid runs: it exists and is not a zombie (an
// orphan's parent here, the container's init, may reap it late).
func running(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(st), ')')
	return i >= 0 && i+2 < len(st) && st[i+2] != 'Z'
}

// TestDrillMongoDB: the same on FerretDB, the sandbox a throwaway FerretDB
// (no mongod here); a stale sandbox left by a killed drill, with a process
// still running, is removed and its process stopped by the next drill.
func TestDrillMongoDB(t *testing.T) {
	t.Setenv("PATH", filepath.Dir(testenv.FindBinary(t, "ferretdb-test"))+":"+os.Getenv("PATH"))
	src := testenv.StartFerretDB(t)
	dir, root := t.TempDir(), t.TempDir()
	cfgPath := writeFile(t, fmt.Sprintf("drd:\n  listen: 127.0.0.1:0\nregions:\n  - {name: eu, store: 'file://%[1]s/eu'}\n  - {name: us, store: 'file://%[1]s/us'}\n"+
		"clusters:\n  - {name: docs, engine: mongodb, region: eu, dsn: '%[2]s', flush_interval: 200ms}\n", dir, src.URL()))
	drd := testenv.StartDrd(t, cfgPath)
	testenv.WaitFor(t, 30*time.Second, "drd reads the oplog for both regions", func() bool {
		return strings.Count(drd.Log(), "region holds no oplog yet") == 2
	})
	h, err := mgmon.NewHeartbeat("docs", "drkit_heartbeat", src.URL())
	if err != nil {
		t.Fatal(err)
	}
	beat(t, h)
	ctx := context.Background()
	coll := src.Client(t).Database("app").Collection("items")
	for i := range 100 {
		must(t)(coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("d%d", i)}}))
	}
	if code, out, errOut := drctl(t, "backup", "--config", cfgPath, "--cluster", "docs"); code != exitOK {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	time.Sleep(time.Second)

	// A sandbox whose drill was killed: its owner is gone, its server runs.
	stale := filepath.Join(root, "docs-us-1700000000000000000")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	sleeper := startSleeper(t)
	id, ok := drill.Identity(sleeper.Process.Pid)
	if !ok {
		t.Fatal("the sleeper is not running")
	}
	os.WriteFile(filepath.Join(stale, "owner"), []byte("999999999 1 x\n"), 0o600)
	os.WriteFile(filepath.Join(stale, "pids"), []byte(id+"\n"), 0o600)

	code, rep, errOut := runDrill(t, cfgPath, "docs", "us", root)
	checkGoodDrill(t, code, rep, errOut, root, 200*time.Millisecond, "choose backup", "sandbox", "fetch base", "fetch log", "replay", "build indexes", "start", "check")
	if !exited(sleeper, 5*time.Second) {
		t.Error("the stale sandbox's process still runs after the next drill")
	}

	// Into a server the config names (drill.target): it ends empty.
	target := testenv.StartFerretDB(t)
	cfgTarget := writeFile(t, fmt.Sprintf("regions:\n  - {name: eu, store: 'file://%[1]s/eu'}\n  - {name: us, store: 'file://%[1]s/us'}\n"+
		"clusters:\n  - {name: docs, engine: mongodb, region: eu, dsn: '%[2]s', drill: {schedule: '@daily', target: '%[3]s'}}\n", dir, src.URL(), target.URL()))
	code, rep, errOut = runDrill(t, cfgTarget, "docs", "us", root)
	checkGoodDrill(t, code, rep, errOut, root, 200*time.Millisecond, "choose backup", "sandbox", "fetch base", "fetch log", "replay", "build indexes", "start", "check")
	dbs, err := target.Client(t).ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if dbs = slices.DeleteFunc(dbs, func(d string) bool { return d == "admin" || d == "local" || d == "config" }); len(dbs) != 0 {
		t.Errorf("the drill left database(s) %v in its target", dbs)
	}
}

func must(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// startSleeper starts a process in its own process group, as a sandbox
// server runs, reaped by the test.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

// exited waits up to d for cmd to end.
func exited(cmd *exec.Cmd, d time.Duration) bool {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// TestScheduledDrills: drd (the real binary) drills a Redis cluster every
// 2 s from region us, as drctl drill child processes, and writes the
// cluster's heartbeat itself (a drilled cluster has one); drctl drills reads
// the reports from the jobs region, and the drills pass with the RPO within
// the flush interval.
func TestScheduledDrills(t *testing.T) {
	prim := testenv.StartRedis(t)
	dir, root := t.TempDir(), t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfgPath := writeFile(t, fmt.Sprintf("drd:\n  listen: %[4]s\nregions:\n  - {name: eu, store: 'file://%[1]s/eu'}\n  - {name: us, store: 'file://%[1]s/us'}\n"+
		"clusters:\n  - name: cache\n    engine: redis\n    region: eu\n    dsn: '%[2]s'\n    flush_interval: 200ms\n"+
		"    drill: {schedule: '@every 2s', regions: [us], catch_up: skip, sandbox: '%[3]s'}\n", dir, prim.URL(), root, listen))
	testenv.StartDrd(t, cfgPath)
	var reps []drill.Report
	testenv.WaitFor(t, 60*time.Second, "drd's drills pass twice", func() bool {
		code, out, _ := drctl(t, "drills", "--config", cfgPath, "--cluster", "cache", "--json")
		reps = nil
		if code != exitOK || json.Unmarshal([]byte(out), &reps) != nil {
			return false
		}
		n := 0
		for _, r := range reps {
			if r.OK {
				n++
			}
		}
		return n >= 2
	})
	newest := reps[0]
	if newest.Region != "us" || !strings.HasPrefix(newest.NewestSource, "heartbeat") || newest.RPOSeconds > 1.5 {
		t.Errorf("newest drill: region %s, RPO %.2f s from %q; want us, drd's heartbeat within 1.5 s", newest.Region, newest.RPOSeconds, newest.NewestSource)
	}
	if code, out, _ := drctl(t, "drills", "--config", cfgPath, "--cluster", "cache"); code != exitOK || !strings.Contains(out, "us      OK") {
		t.Errorf("drctl drills: exit %d\n%s", code, out)
	}
	resp, err := http.Get("http://" + listen + "/api/v1/drills")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var api []drill.Report
	if err := json.NewDecoder(resp.Body).Decode(&api); err != nil || len(api) < 2 || api[0].Cluster != "cache" {
		t.Errorf("/api/v1/drills: %d reports, %v", len(api), err)
	}
}
