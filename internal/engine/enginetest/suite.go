// Package enginetest is the conformance suite every engine adapter runs, as
// storetest is for Store: what drd and drctl rely on an engine for, checked
// through the engine registry against a real server, so that a new engine
// gets the same checks by writing a Harness.
//
// Imports internal/engine, internal/config, internal/regions, internal/testenv.
package enginetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/all" // file:// and s3:// stores
)

// Harness is what an engine's test gives the suite.
type Harness struct {
	Engine string
	// Start starts a throwaway primary and returns its DSN and any extra
	// cluster keys (indented YAML lines, e.g. "    server_id: 7\n").
	Start func(t *testing.T) (dsn, extraYAML string)
	// Write commits one row stamped v into the primary's stamps table
	// (created on first use).
	Write func(t *testing.T, dsn string, v int)
	// Target prepares an empty restore target: the engine-specific restore
	// flags, and a func returning the stamps the restored database holds,
	// sorted.
	Target func(t *testing.T) (flags map[string]string, stamps func(t *testing.T) []int)
}

// setup is one cluster shipping into regions a and b (file:// in a folder
// every server user can read: PostgreSQL's restore_command reads it).
type setup struct {
	h       Harness
	dsn     string
	cfg     *config.Config
	cl      config.Cluster
	regions []*storage.Region
	dir     string
	env     engine.Env
}

func newSetup(t *testing.T, h Harness) *setup {
	t.Helper()
	dsn, extra := h.Start(t)
	dir := testenv.SharedDir(t)
	yaml := fmt.Sprintf("regions:\n  - {name: a, store: 'file://%[1]s/a?mode=0644'}\n  - {name: b, store: 'file://%[1]s/b?mode=0644'}\n"+
		"clusters:\n  - name: c\n    engine: %[2]s\n    region: a\n    ship_to: [a, b]\n    dsn: '%[3]s'\n    flush_interval: 200ms\n%[4]s",
		dir, h.Engine, dsn, extra)
	path := filepath.Join(dir, "drkit.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	s := &setup{h: h, dsn: dsn, cfg: cfg, cl: cfg.Clusters[0], dir: dir}
	for _, name := range []string{"a", "b"} {
		r, err := regions.Open(context.Background(), cfg, name, storage.RegionOptions{WithIdentity: true})
		if err != nil {
			t.Fatal(err)
		}
		s.regions = append(s.regions, r)
	}
	s.env = engine.Env{Config: cfg, Cluster: s.cl, Log: testenv.Logger(t), Drctl: testenv.Binary(t, "drctl")}
	return s
}

func capability[T any](t *testing.T, name, what string) T {
	t.Helper()
	c, err := engine.Capable[T](name, what)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ship runs the engine's shipper until stop is called.
func (s *setup) ship(t *testing.T) (sh engine.Shipper, stop func()) {
	t.Helper()
	sh = capability[engine.Shipping](t, s.h.Engine, "ship its log").NewShipper(s.cl, s.regions, s.env.Log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sh.Run(ctx); close(done) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return sh, stop
}

// waitShipped waits until every region holds what the primary committed
// before it was called: each region's exposure is zero and it became durable
// after the call, twice, a flush interval and more apart (log committed just
// before the call may still be on its way to drd at the first look).
func waitShipped(t *testing.T, sh engine.Shipper) {
	t.Helper()
	since := time.Now()
	settled := func() bool {
		_, _, rs := sh.Progress(time.Now())
		if len(rs) < 2 {
			return false
		}
		for _, r := range rs {
			if r.Exposure > 0 || r.ShippedAt.Before(since) {
				return false
			}
		}
		return true
	}
	for pass := 0; pass < 2; pass++ {
		testenv.WaitFor(t, 30*time.Second, "every region holds the log", settled)
		time.Sleep(500 * time.Millisecond)
	}
}

func (s *setup) restore(t *testing.T, region *storage.Region, at *time.Time) []int {
	t.Helper()
	flags, stamps := s.h.Target(t)
	rs := capability[engine.Restorer](t, s.h.Engine, "restore")
	out, err := rs.Restore(context.Background(), s.env, engine.RestoreRequest{Region: region, TargetTime: at, Flags: flags})
	if err != nil {
		t.Fatalf("restore from region %s: %v", region.Name, err)
	}
	if out.Text == nil || out.Value == nil {
		t.Fatalf("restore answered no text or value")
	}
	return stamps(t)
}

func (s *setup) verify(t *testing.T, region *storage.Region, all bool) (string, int) {
	t.Helper()
	v := capability[engine.Verifier](t, s.h.Engine, "verify")
	out, problems, err := v.Verify(context.Background(), s.env, region, all)
	if err != nil {
		t.Fatalf("verify region %s: %v", region.Name, err)
	}
	var b strings.Builder
	if err := out.Text(&b); err != nil {
		t.Fatal(err)
	}
	return b.String(), problems
}

// Run runs every check of the suite.
func Run(t *testing.T, h Harness) {
	t.Run("ShipBackupRestore", func(t *testing.T) { shipBackupRestore(t, h) })
}

// shipBackupRestore: a backup, then log shipped across a stop and restart of
// the shipper (while the primary commits), verifies clean in both regions;
// a restore from the second region alone holds every commit once, a restore
// to a time between two commits holds exactly those before it; a log object
// deleted from a region makes verify fail, and a corrupted one is named.
func shipBackupRestore(t *testing.T, h Harness) {
	s := newSetup(t, h)
	sh, stop := s.ship(t)
	h.Write(t, s.dsn, 1)
	b := capability[engine.Backuper](t, h.Engine, "take base backups")
	if _, err := b.Backup(context.Background(), s.env, s.regions); err != nil {
		t.Fatalf("backup: %v", err)
	}
	h.Write(t, s.dsn, 2)
	waitShipped(t, sh)
	stop()
	h.Write(t, s.dsn, 3) // while no shipper runs: the next one resumes with it
	sh, _ = s.ship(t)
	h.Write(t, s.dsn, 4)
	time.Sleep(1100 * time.Millisecond)
	between := time.Now()
	time.Sleep(1100 * time.Millisecond)
	h.Write(t, s.dsn, 5)
	waitShipped(t, sh)

	for _, r := range s.regions {
		if text, problems := s.verify(t, r, true); problems != 0 {
			t.Fatalf("verify region %s after a shipper restart: %d problem(s)\n%s", r.Name, problems, text)
		}
	}
	if got := s.restore(t, s.regions[1], nil); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Errorf("restore of the newest log from region b holds stamps %v, want 1..5 once each", got)
	}
	if got := s.restore(t, s.regions[1], &between); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("restore to %s (between stamps 4 and 5) holds %v, want 1..4", between.Format(time.RFC3339Nano), got)
	}

	checkBackupObjects(t, s, b)

	logs := logObjects(t, s, "b")
	victim := logs[len(logs)/2]
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	if text, problems := s.verify(t, s.regions[1], false); problems == 0 {
		t.Errorf("verify of region b with log object %s deleted found nothing:\n%s", filepath.Base(victim), text)
	}
	logs = logObjects(t, s, "a")
	victim = logs[len(logs)/2]
	flip(t, victim)
	if text, problems := s.verify(t, s.regions[0], true); problems == 0 || !strings.Contains(text, filepath.Base(victim)) {
		t.Errorf("verify --all-checksums of region a with log object %s corrupted: %d problem(s), not naming it:\n%s", filepath.Base(victim), problems, text)
	}
}

// checkBackupObjects: with a second backup taken, a byte flipped in an
// object of the first one (in region b) is found and named by verify
// --all-checksums, which reports its progress; plain verify, which reads
// only the newest backup's objects, passes and says the older ones were not
// read.
func checkBackupObjects(t *testing.T, s *setup, b engine.Backuper) {
	t.Helper()
	base := filepath.Join(s.dir, "b", s.cl.Name, "base")
	first, err := os.ReadDir(base) // sorted: the oldest backup first
	if err != nil || len(first) == 0 {
		t.Fatalf("region b's base folder: %v, %d entries; want the first backup", err, len(first))
	}
	if _, err := b.Backup(context.Background(), s.env, s.regions); err != nil {
		t.Fatalf("second backup: %v", err)
	}
	var victim string
	_ = filepath.WalkDir(filepath.Join(base, first[0].Name()), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != "manifest.json" && victim == "" {
			victim = p
		}
		return nil
	})
	if victim == "" {
		t.Fatalf("backup %s holds no data object", first[0].Name())
	}
	flip(t, victim)
	var reports int
	s.env.Progress = func(done, total int64) { reports++ }
	defer func() { s.env.Progress = nil }()
	if text, problems := s.verify(t, s.regions[1], true); problems == 0 || !strings.Contains(text, filepath.Base(victim)) {
		t.Errorf("verify --all-checksums with %s of the older backup corrupted: %d problem(s), not naming it:\n%s", filepath.Base(victim), problems, text)
	}
	if reports == 0 {
		t.Error("verify --all-checksums reported no progress")
	}
	if text, problems := s.verify(t, s.regions[1], false); problems != 0 || !strings.Contains(text, "--all-checksums") {
		t.Errorf("plain verify (the newest backup's objects only): %d problem(s); its text must say what it did not read:\n%s", problems, text)
	}
}

// logObjects lists the files of region's log folder (the engine's layout),
// in name order: complete objects, not partial chunks' folders.
func logObjects(t *testing.T, s *setup, region string) []string {
	t.Helper()
	layout, err := snapshots.LayoutFor(s.h.Engine)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.dir, region, s.cl.Name, layout.Dir)
	var out []string
	// Whole objects at any depth (a Redis history's folder), not a
	// PostgreSQL segment's partial chunks.
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasSuffix(d.Name(), ".partial") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && !strings.Contains(d.Name(), ".history") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	if len(out) < 3 {
		t.Fatalf("region %s holds %d log objects in %s; the checks need 3 or more", region, len(out), dir)
	}
	return out
}

func flip(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
