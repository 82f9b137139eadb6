package deploy

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/drill"
	"github.com/drkit/drkit/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.UseS3Credentials()
	os.Exit(m.Run())
}

// stack is drd watching a PostgreSQL primary + standby and a MariaDB primary +
// replica, shipping to a file region ("near") and a MinIO region ("far")
// behind toxiproxy, drilling restores of the PostgreSQL cluster from near
// every 10 s, scraped by a real Prometheus that evaluates the shipped rules.
type stack struct {
	drdAddr    string
	prom       *testenv.Prometheus
	pg, sb     *testenv.Postgres
	my, myRepl *testenv.MariaDB
	far        *testenv.Proxy
	work       string
}

// testRules is the shipped rules file with every `for:` shortened to 2s and
// LogShippingStalled's 60 s threshold to 10 s: the expressions are the
// shipped ones, but the test does not wait out production hold times and
// RPO (bench/alerts.sh measures those; promtool's unit tests,
// drkit.rules_test.yml, hold the shipped thresholds).
func testRules(t *testing.T, dir string) string {
	b, err := os.ReadFile("prometheus/drkit.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	out := regexp.MustCompile(`(?m)^(\s+for:) \S+$`).ReplaceAll(b, []byte("$1 2s"))
	const stalled = "expr: drkit_log_shipping_lag_seconds > 60"
	if !bytes.Contains(out, []byte(stalled)) {
		t.Fatalf("the rules no longer hold %q: update testRules", stalled)
	}
	out = bytes.Replace(out, []byte(stalled), []byte("expr: drkit_log_shipping_lag_seconds > 10"), 1)
	path := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startStack(t *testing.T) *stack {
	drd, drctl := testenv.Binary(t, "drd"), testenv.Binary(t, "drctl")
	work := testenv.SharedDir(t)
	s := &stack{drdAddr: freeAddr(t), pg: &testenv.Postgres{}, my: &testenv.MariaDB{}, work: work}
	minio := &testenv.MinIO{}
	s.prom = &testenv.Prometheus{Config: fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: drkit
    static_configs: [{targets: [%q]}]
`, testRules(t, work), s.drdAddr)}
	testenv.Start(t, s.pg, s.my, minio, s.prom)
	s.sb, s.myRepl = s.pg.StartStandby(t), s.my.StartReplica(t)
	s.far = testenv.NewProxy(t, strings.TrimPrefix(minio.Endpoint, "http://"))
	farURL := fmt.Sprintf("s3://%s/far?%s", minio.Bucket, url.Values{"endpoint": {"http://" + s.far.Addr}, "region": {minio.Region}, "path_style": {"true"}}.Encode())

	cfg := filepath.Join(work, "drkit.yaml")
	body := fmt.Sprintf(`drd: {listen: %q}
regions:
  - {name: near, store: 'file://%s/near?mode=0644'}
  - {name: far, store: '%s'}
clusters:
  - name: orders
    engine: postgres
    region: near
    dsn: '%s'
    replicas: [{name: standby, region: far, dsn: '%s'}]
    monitor: {interval: 1s}
    drill: {schedule: "@every 10s", regions: [near], catch_up: skip, max_duration: 2m, sandbox: '%s/drill'}
    objectives: {rto: 10m, rpo: 10m}
  - name: shop
    engine: mysql
    region: near
    dsn: '%s'
    replicas: [{name: replica, region: far, dsn: '%s'}]
    monitor: {interval: 1s}
copies:
  - {cluster: orders, from: near, to: far, schedule: "@every 5s", catch_up: skip}
`, s.drdAddr, work, farURL, s.pg.DSN("postgres"), s.sb.DSN("postgres"), work, s.my.DSN(""), s.myRepl.DSN(""))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	// A backup in every region, so the backup metrics have a value.
	if out, err := exec.Command(drctl, "backup", "--config", cfg, "--cluster", "orders").CombinedOutput(); err != nil {
		t.Fatalf("drctl backup: %v\n%s", err, out)
	}
	cmd := exec.Command(drd, "--config", cfg, "--log-level", "debug")
	cmd.Stderr, _ = os.Create(filepath.Join(work, "drd.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// A drill the kill cut short leaves its sandbox's server running
		// (the next drd would remove it): this one is the test's.
		drill.CleanStale(filepath.Join(work, "drill"), slog.Default())
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(work, "drd.log"))
			t.Logf("drd log (tail):\n%s", tail(string(b), 40))
		}
	})
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// alertState returns the state ("pending", "firing") of the alert name whose
// labels include match, or "" when Prometheus has none.
func alertState(t testing.TB, promURL, name string, match map[string]string) string {
	resp, err := http.Get(promURL + "/api/v1/alerts")
	if err != nil {
		t.Fatalf("prometheus alerts API: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("prometheus alerts API: %v", err)
	}
	for _, a := range body.Data.Alerts {
		ok := a.Labels["alertname"] == name
		for k, v := range match {
			ok = ok && a.Labels[k] == v
		}
		if ok {
			return a.State
		}
	}
	return ""
}

// waitAlert polls until the alert's state is want and returns how long that took.
func waitAlert(t *testing.T, promURL, name string, match map[string]string, want string, limit time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		got := alertState(t, promURL, name, match)
		if got == want {
			return time.Since(began)
		}
		if time.Since(began) > limit {
			t.Fatalf("%s%v: state %q after %s, want %q", name, match, got, limit, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func pgExec(t testing.TB, dsn, q string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// resumeReplay resumes WAL replay on a standby. Resumed replay may cancel
// the very session that resumed it (SQLSTATE 40001, a recovery conflict with
// its snapshot), so the result is read back from pg_is_wal_replay_paused.
func resumeReplay(t testing.TB, dsn string) {
	t.Helper()
	ctx := context.Background()
	for range 5 {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Exec(ctx, "SELECT pg_wal_replay_resume()")
		var paused bool
		qerr := c.QueryRow(ctx, "SELECT pg_is_wal_replay_paused()").Scan(&paused)
		c.Close(ctx)
		if err == nil || (qerr == nil && !paused) {
			return
		}
		t.Logf("resume replay: %v; retrying", err)
	}
	t.Fatal("WAL replay is still paused after 5 attempts to resume it")
}

func myExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// onlyElsewhere lists metrics the rules query that drd exports only in a
// state this test's drd is not in, and the real-server tests that check they
// are exported there.
var onlyElsewhere = map[string]string{
	"drkit_sync_server_synchronous": "zero-RPO mode only, while drd streams: TestSyncStallIsVisible (snapshots/postgres), TestSemiSyncFallbackIsVisible (snapshots/mysql)",
}

// TestAlertsEndToEnd: Prometheus scrapes drd; every metric the rules and
// dashboards query is exported; pausing a standby's replay, stopping a
// replica's SQL thread and cutting a region's store off each fire their alert,
// and undoing it clears the alert; nothing else fires meanwhile.
func TestAlertsEndToEnd(t *testing.T) {
	s := startStack(t)
	quiet := []string{"ReplicaDown", "ReplicaOutOfSync", "DatabaseUnreachable", "DrdDown", "BackupFailing"}

	t.Run("queried metrics are exported", func(t *testing.T) {
		for n := range onlyElsewhere {
			if !slices.Contains(queriedMetrics(t), n) {
				t.Errorf("onlyElsewhere lists %s, which no rule or dashboard queries: drop it", n)
			}
		}
		want := queriedMetrics(t)
		var missing []string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			exported := scrapeNames(s.drdAddr)
			missing = missing[:0]
			for _, n := range want {
				if !exported[n] && onlyElsewhere[n] == "" {
					missing = append(missing, n)
				}
			}
			if len(missing) == 0 {
				return
			}
		}
		t.Fatalf("the rules or dashboards query metrics drd does not export: %s", strings.Join(missing, ", "))
	})
	if t.Failed() {
		return
	}
	t.Run("scenarios", func(t *testing.T) {
		t.Run("postgres replay paused", func(t *testing.T) {
			t.Parallel()
			match := map[string]string{"cluster": "orders", "replica": "standby"}
			if st := alertState(t, s.prom.URL, "ReplicationLagHigh", match); st != "" {
				t.Fatalf("ReplicationLagHigh is %s before replay was paused", st)
			}
			pgExec(t, s.sb.DSN("postgres"), "SELECT pg_wal_replay_pause()")
			took := waitAlert(t, s.prom.URL, "ReplicationLagHigh", match, "firing", 90*time.Second)
			t.Logf("ReplicationLagHigh fired %s after pg_wal_replay_pause (replay stopped with WAL waiting; for shortened to 2 s)", took.Round(time.Second))
			resumeReplay(t, s.sb.DSN("postgres"))
			waitAlert(t, s.prom.URL, "ReplicationLagHigh", match, "", 30*time.Second)
		})
		t.Run("mariadb SQL thread stopped", func(t *testing.T) {
			t.Parallel()
			match := map[string]string{"cluster": "shop", "replica": "replica"}
			if st := alertState(t, s.prom.URL, "ReplicationLagHigh", match); st != "" {
				t.Fatalf("ReplicationLagHigh is %s before the SQL thread stopped", st)
			}
			db := s.myRepl.Open(t, "")
			myExec(t, db, "STOP SLAVE SQL_THREAD")
			took := waitAlert(t, s.prom.URL, "ReplicationLagHigh", match, "firing", 90*time.Second)
			t.Logf("ReplicationLagHigh fired %s after STOP SLAVE SQL_THREAD", took.Round(time.Second))
			myExec(t, db, "START SLAVE SQL_THREAD")
			waitAlert(t, s.prom.URL, "ReplicationLagHigh", match, "", 30*time.Second)
		})
		t.Run("drill of a damaged backup", func(t *testing.T) {
			t.Parallel()
			match := map[string]string{"cluster": "orders", "region": "near"}
			testenv.WaitFor(t, 90*time.Second, "a drill passes", func() bool {
				return scrapeValue(s.drdAddr, `drkit_drill_last_success_timestamp_seconds{cluster="orders",region="near"}`) > 0
			})
			if st := alertState(t, s.prom.URL, "DrillFailing", match); st != "" {
				t.Fatalf("DrillFailing is %s before the damage", st)
			}
			manifests, _ := filepath.Glob(filepath.Join(s.work, "near", "orders", "base", "*", "manifest.json"))
			if len(manifests) != 1 {
				t.Fatalf("region near holds %d base backup manifests, want 1", len(manifests))
			}
			good, err := os.ReadFile(manifests[0])
			if err != nil {
				t.Fatal(err)
			}
			bad := slices.Clone(good)
			bad[len(bad)/2] ^= 0xff
			if err := os.WriteFile(manifests[0], bad, 0o644); err != nil {
				t.Fatal(err)
			}
			took := waitAlert(t, s.prom.URL, "DrillFailing", match, "firing", 90*time.Second)
			t.Logf("DrillFailing fired %s after the manifest was damaged (drills every 10 s)", took.Round(time.Second))
			if err := os.WriteFile(manifests[0], good, 0o644); err != nil {
				t.Fatal(err)
			}
			waitAlert(t, s.prom.URL, "DrillFailing", match, "", 90*time.Second)
		})
		t.Run("store outage", func(t *testing.T) {
			t.Parallel()
			match := map[string]string{"cluster": "orders", "region": "far"}
			if st := alertState(t, s.prom.URL, "LogShippingStalled", match); st != "" {
				t.Fatalf("LogShippingStalled is %s before the outage", st)
			}
			s.far.Down()
			took := waitAlert(t, s.prom.URL, "LogShippingStalled", match, "firing", 150*time.Second)
			t.Logf("LogShippingStalled fired %s after the store went down (threshold 10 s in the test rules)", took.Round(time.Second))
			waitAlert(t, s.prom.URL, "StoreDown", map[string]string{"region": "far"}, "firing", 60*time.Second)
			s.far.Up(t)
			waitAlert(t, s.prom.URL, "LogShippingStalled", match, "", 60*time.Second)
		})
	})
	for _, name := range quiet {
		if st := alertState(t, s.prom.URL, name, nil); st != "" {
			t.Errorf("%s is %s: it should have stayed quiet", name, st)
		}
	}
}
