package postgres_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
)

// TestSyncCommitBench is the zero-RPO benchmark of issue #26 (make
// bench-sync), not part of make test: pgbench (scale 10, 8 clients, 15 s) on
// a primary with fsync on, with drd in sync mode off, remote_write and
// remote_durable into two file:// regions and into two MinIO buckets (and
// remote_durable with only the sync region required), beside
// the anchor: the same primary settings with a synchronous streaming standby
// on this machine. It prints tps and commit latency p50/p99 per case and
// each case's tps as a ratio of the anchor's.
func TestSyncCommitBench(t *testing.T) {
	if os.Getenv("DRKIT_BENCH_SYNC") == "" {
		t.Skip("a benchmark (minutes of pgbench): run it with make bench-sync, which sets DRKIT_BENCH_SYNC=1")
	}
	bin, err := pgsnap.BinDir("15")
	if err != nil {
		t.Fatal(err)
	}
	testenv.UseS3Credentials()
	stores := []string{"file", "minio"}
	if only := os.Getenv("DRKIT_BENCH_SYNC_STORES"); only != "" {
		stores = strings.Split(only, ",")
	}
	servers := map[string]*testenv.S3{}
	for _, store := range stores {
		switch store {
		case "minio":
			servers[store] = &testenv.StartMinIO(t).S3
		case "versitygw":
			servers[store] = &testenv.StartVersityGW(t).S3
		}
	}
	type result struct {
		name     string
		tps      float64
		p50, p99 time.Duration
	}
	var results []result
	run := func(name string, pg *testenv.Postgres) {
		tps, p50, p99 := pgbenchRun(t, bin, pg)
		results = append(results, result{name, tps, p50, p99})
		t.Logf("%-34s tps %7.0f  p50 %6.2f ms  p99 %6.2f ms", name, tps, ms(p50), ms(p99))
	}
	settings := func(names string) map[string]string {
		return map[string]string{"fsync": "on", "synchronous_standby_names": names, "max_wal_size": "1GB"}
	}

	anchor := &testenv.Postgres{Settings: settings("*")}
	testenv.Start(t, anchor)
	anchor.StartStandby(t)
	run("anchor: synchronous standby", anchor)
	_ = anchor.Stop()

	// Each case's sync regions are [us]. By default every ship_to region is
	// required (its position confirms the slot), so eu gates the reported
	// position too; "us only" makes eu an asynchronous copy, the closest
	// match to the anchor's single synchronous standby.
	cases := []struct{ mode, required, label string }{
		{"off", "", ""},
		{"remote_write", "", ""},
		{"remote_durable", "", ""},
		{"remote_durable", "    required_regions: [us]\n", ", us only"},
	}
	for _, store := range stores {
		for _, c := range cases {
			if only := os.Getenv("DRKIT_BENCH_SYNC_CASE"); only != "" && only != c.mode+c.label {
				continue
			}
			mode := c.mode
			names := "drkit"
			if mode == "off" {
				names = "" // asynchronous: drd ships every flush_interval
			}
			pg := &testenv.Postgres{Settings: settings(names)}
			e := newEnvFull(t, t.TempDir(), pg, fmt.Sprintf("    sync: {mode: %s, regions: [us]}\n%s", mode, c.required))
			if srv := servers[store]; srv != nil {
				e.useS3(t, srv, strings.ReplaceAll(mode, "_", "-")+strings.ReplaceAll(strings.TrimPrefix(c.label, ","), " ", "-"))
			}
			drd := e.startDrd(t)
			run(fmt.Sprintf("drd sync %s to %s%s", mode, store, c.label), pg)
			_ = drd.Process.Kill()
			_ = drd.Wait()
			_ = pg.Stop()
		}
	}
	anchorTPS := results[0].tps
	var b strings.Builder
	fmt.Fprintf(&b, "%-34s %8s %9s %9s %s\n", "case", "tps", "p50 ms", "p99 ms", "tps / anchor")
	for _, r := range results {
		fmt.Fprintf(&b, "%-34s %8.0f %9.2f %9.2f %.2f\n", r.name, r.tps, ms(r.p50), ms(r.p99), r.tps/anchorTPS)
	}
	t.Logf("pgbench -c 8 -j 2 -T 15, scale 10, fsync on, 2 cores:\n%s", b.String())
}

// useS3 moves the env's regions eu and us into prefixes eu-<name> and
// us-<name> of srv's bucket.
func (e *env) useS3(t *testing.T, srv *testenv.S3, name string) {
	t.Helper()
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := regexp.MustCompile(`file://\S+/eu\?mode=0644`).ReplaceAllString(string(cfg), srv.StoreURL("eu-"+name))
	s = regexp.MustCompile(`file://\S+/us\?mode=0644`).ReplaceAllString(s, srv.StoreURL("us-"+name))
	e.writeConfig(t, s)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pgbenchRun initialises pgbench's tables on pg and runs the TPC-B-like load,
// returning tps and the commit latency percentiles from its per-transaction
// log.
func pgbenchRun(t *testing.T, bin string, pg *testenv.Postgres) (tps float64, p50, p99 time.Duration) {
	t.Helper()
	pgbench := filepath.Join(bin, "pgbench")
	if out, err := exec.Command(pgbench, "-i", "-s", "10", "-q", pg.DSN("postgres")).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command(pgbench, "-c", "8", "-j", "2", "-T", "15", "-n", "--log", "--log-prefix", filepath.Join(dir, "tx"), pg.DSN("postgres"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("pgbench printed no tps:\n%s", out)
	}
	tps, _ = strconv.ParseFloat(string(m[1]), 64)
	var lat []time.Duration
	logs, _ := filepath.Glob(filepath.Join(dir, "tx*"))
	for _, name := range logs {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// client_id transaction_no time script_no time_epoch time_us:
			// time is the transaction's latency in µs.
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err == nil {
				lat = append(lat, time.Duration(us)*time.Microsecond)
			}
		}
		f.Close()
	}
	if len(lat) == 0 {
		t.Fatal("pgbench logged no transaction")
	}
	slices.Sort(lat)
	return tps, lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
}
