package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
	"github.com/drkit/drkit/snapshots/schedule"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The real drd: ships WAL, takes scheduled backups, applies retention, and
// exports what it knows as metrics.
func TestDrdShipsBacksUpAndExports(t *testing.T) {
	e := newEnvWith(t, "    base_backup:\n      schedule: \"@every 3s\"\n    retention:\n      full: 1\n")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.startDrdAt(t, addr)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t (v int)")

	wantLines := []*regexp.Regexp{
		regexp.MustCompile(`drkit_log_shipped_timestamp_seconds\{cluster="orders",engine="postgres",region="us"\} \d`),
		regexp.MustCompile(`drkit_log_shipping_lag_seconds\{cluster="orders",engine="postgres",region="eu"\} 0(\.\d+)?(e-\d+)?\n`),
		regexp.MustCompile(`drkit_backup_last_success_timestamp_seconds\{cluster="orders",engine="postgres",region="eu"\} \d`),
		regexp.MustCompile(`drkit_backup_size_bytes\{cluster="orders",engine="postgres",region="us"\} \d`),
	}
	deadline := time.Now().Add(60 * time.Second)
	var body string
	for {
		testenv.PGExec(t, conn, "INSERT INTO t VALUES (1)")
		body = scrape(t, addr)
		missing := 0
		for _, re := range wantLines {
			if !re.MatchString(body) {
				missing++
			}
		}
		list, _, _ := pgsnap.ListBackups(context.Background(), e.regions[0].Pipeline, "orders")
		if missing == 0 && len(list) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "drkit_") {
					lines = append(lines, l)
				}
			}
			t.Fatalf("drd's metrics lack %d expected series after 60s:\n%s\ndrd log:\n%s", missing, strings.Join(lines, "\n"), tailString(e.drdLog(), 20))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Several scheduled backups have run by now or soon; retention keeps one.
	time.Sleep(8 * time.Second)
	for _, r := range e.regions {
		list, _, err := pgsnap.ListBackups(context.Background(), r.Pipeline, "orders")
		if err != nil || len(list) != 1 {
			t.Fatalf("region %s holds %d backups (%v); retention.full 1 keeps 1", r.Name, len(list), err)
		}
	}
	if !strings.Contains(e.drdLog(), "retention expired backups") {
		t.Fatalf("no scheduled backup was expired; drd log:\n%s", tailString(e.drdLog(), 30))
	}
	// The scheduled backups ran through the schedule engine: each run is
	// recorded in the jobs region, where drctl reads it without drd.
	out, code := e.drctlRun(t, "schedules", "--json")
	if code != 0 || !strings.Contains(out, `"job": "backup-orders"`) || !strings.Contains(out, `"kind": "base-backup"`) || !strings.Contains(out, `"status": "ok"`) {
		t.Fatalf("drctl schedules --json lacks the scheduled backups' runs: exit %d\n%s", code, out)
	}
}

// The real drd runs a scheduled backup-set copy into a region the cluster
// does not ship to, records each run in the jobs region and exports when the
// last one succeeded.
func TestDrdScheduledCopy(t *testing.T) {
	e := newEnvWith(t, "    ship_to: [eu]\ncopies:\n  - {cluster: orders, from: eu, to: us, schedule: \"@every 2s\", catch_up: skip}\n")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.startDrdAt(t, addr)
	eu, us := e.regions[0], e.regions[1]
	e.regions = e.regions[:1]
	m := e.backup(t)
	want := regexp.MustCompile(`drkit_copy_last_success_timestamp_seconds\{kind="backup-set",source_region="eu",target_region="us"\} \d`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		list, _, _ := pgsnap.ListBackups(context.Background(), us.Pipeline, "orders")
		if want.MatchString(scrape(t, addr)) && len(list) == 1 && list[0].ID == m.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful scheduled copy of backup %s to us after 60s; drd log:\n%s", m.ID, tailString(e.drdLog(), 30))
		}
		time.Sleep(500 * time.Millisecond)
	}
	runner := &schedule.Runner{Store: eu.Store}
	recs, err := runner.Records(context.Background(), "copy-orders-eu-to-us")
	if err != nil || len(recs) == 0 {
		t.Fatalf("no job records in the jobs region (eu): %v", err)
	}
	var ok *schedule.Record
	for i := range recs {
		if recs[i].Status == schedule.StatusOK && recs[i].Objects > 0 {
			ok = &recs[i]
		}
	}
	if ok == nil || ok.Bytes == 0 || ok.Kind != "backup-set" {
		t.Fatalf("no record of the run that copied the backup: %+v", recs)
	}
	resp, err := http.Get("http://" + addr + "/api/v1/schedules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jobs []snapshots.JobStatus
	if err := json.NewDecoder(resp.Body).Decode(&jobs); err != nil || len(jobs) != 1 {
		t.Fatalf("GET /api/v1/schedules: %v, %+v", err, jobs)
	}
	if j := jobs[0]; j.Name != "copy-orders-eu-to-us" || j.From != "eu" || j.To != "us" || len(j.Runs) == 0 || j.Runs[0].Job != j.Name {
		t.Fatalf("GET /api/v1/schedules: %+v", j)
	}
	// Without drd: drctl reads the same records from the jobs region.
	out, code := e.drctlRun(t, "status", "--source", "stores")
	if code != 0 || !regexp.MustCompile(`orders eu -> us\s+@every 2s\s+\S+\s+(ok|running)\s+20\d\d-`).MatchString(out) {
		t.Fatalf("drctl status does not show the copy's last success: exit %d\n%s", code, out)
	}
	out, code = e.drctlRun(t, "schedules", "--json")
	if code != 0 || !strings.Contains(out, `"job": "copy-orders-eu-to-us"`) || !strings.Contains(out, `"status": "ok"`) {
		t.Fatalf("drctl schedules --json: exit %d\n%s", code, out)
	}
}
