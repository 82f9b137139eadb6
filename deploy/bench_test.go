package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

// BenchmarkMonitor (bench/monitor.sh) measures, with the shipped defaults
// (monitor.interval 5s, deploy/prometheus/prometheus.yml's 5s scrape and
// evaluation, the shipped rules unchanged):
//   - alert latency: pg_wal_replay_pause on a real standby to
//     ReplicationLagHigh firing in Prometheus;
//   - drd's idle CPU and RSS while watching 4 clusters (2 PostgreSQL, 2
//     MariaDB, each with a replica), beside postgres_exporter and
//     mysqld_exporter scraping the same four servers. Idle means after a
//     90 s settle: drd's start re-sends the open WAL segments and binlog to
//     the regions, a burst whose heap the runtime returns to the OS only
//     after a few GC cycles; the peak (VmHWM) is reported beside it.
//
// Run: go test ./deploy -run '^$' -bench Monitor -benchtime 1x -timeout 15m
func BenchmarkMonitor(b *testing.B) {
	pg, my, prom := &testenv.Postgres{}, &testenv.MariaDB{}, &testenv.Prometheus{}
	drdAddr := freeAddr(b)
	promCfg, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		b.Fatal(err)
	}
	rules, _ := filepath.Abs("prometheus/drkit.rules.yml")
	prom.Config = strings.NewReplacer("- drkit.rules.yml", "- "+rules, "127.0.0.1:9580", drdAddr).Replace(string(promCfg))
	testenv.Start(b, pg, my, prom)
	sb, repl := pg.StartStandby(b), my.StartReplica(b)
	work := testenv.SharedDir(b)
	cfg := filepath.Join(work, "drkit.yaml")
	var clusters strings.Builder
	// HEARTBEAT=off measures drd without the heartbeat writes, whose log
	// drd itself then ships to both regions every second.
	monitorCfg := ""
	if os.Getenv("HEARTBEAT") == "off" {
		monitorCfg = ", monitor: {heartbeat: {disabled: true}}"
	}
	for _, n := range []string{"orders", "billing"} {
		fmt.Fprintf(&clusters, "  - {name: %s, engine: postgres, region: near, dsn: '%s', replicas: [{name: standby, region: far, dsn: '%s'}]%s}\n", n, pg.DSN("postgres"), sb.DSN("postgres"), monitorCfg)
	}
	for _, n := range []string{"shop", "crm"} {
		fmt.Fprintf(&clusters, "  - {name: %s, engine: mysql, region: near, dsn: '%s', replicas: [{name: replica, region: far, dsn: '%s'}]%s}\n", n, my.DSN(""), repl.DSN(""), monitorCfg)
	}
	body := fmt.Sprintf("drd: {listen: %q}\nregions:\n  - {name: near, store: 'file://%s/near'}\n  - {name: far, store: 'file://%s/far'}\nclusters:\n%s", drdAddr, work, work, clusters.String())
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		b.Fatal(err)
	}
	drd := exec.Command(testenv.Binary(b, "drd"), "--config", cfg)
	if err := drd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = drd.Process.Kill(); _ = drd.Wait() })

	var (
		anchors     []*exec.Cmd
		anchorAddrs []string
	)
	exporter := func(bin, dsn string) {
		addr := freeAddr(b)
		c := exec.Command(bin, "--web.listen-address="+addr)
		c.Env = append(os.Environ(), "DATA_SOURCE_NAME="+dsn)
		anchors, anchorAddrs = append(anchors, c), append(anchorAddrs, addr)
	}
	exporter("prometheus-postgres-exporter", pg.DSN("postgres"))
	exporter("prometheus-postgres-exporter", sb.DSN("postgres"))
	exporter("prometheus-mysqld-exporter", fmt.Sprintf("root@(127.0.0.1:%d)/", my.Port))
	exporter("prometheus-mysqld-exporter", fmt.Sprintf("root@(127.0.0.1:%d)/", repl.Port))
	for _, c := range anchors {
		if err := c.Start(); err != nil {
			b.Fatalf("start %s (make deps installs it): %v", c.Path, err)
		}
		b.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	}
	// Scrape the exporters as often as Prometheus scrapes drd, so both do
	// the work a monitored setup does.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			for _, addr := range anchorAddrs {
				scrapeNames(addr)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Second):
			}
		}
	}()

	b.ResetTimer()
	time.Sleep(90 * time.Second) // settle: slots, heartbeat tables, the start's catch-up and its garbage
	const idle = 60 * time.Second
	cpu0, anchorCPU0 := cpuSeconds(drd.Process.Pid), 0.0
	for _, c := range anchors {
		anchorCPU0 += cpuSeconds(c.Process.Pid)
	}
	time.Sleep(idle)
	drdCPU := (cpuSeconds(drd.Process.Pid) - cpu0) / idle.Seconds() * 100
	anchorCPU, anchorRSS := -anchorCPU0, 0.0
	for _, c := range anchors {
		anchorCPU += cpuSeconds(c.Process.Pid)
		anchorRSS += rssMiB(c.Process.Pid, "VmRSS:")
	}
	anchorCPU = anchorCPU / idle.Seconds() * 100
	drdRSS := rssMiB(drd.Process.Pid, "VmRSS:")
	b.ReportMetric(drdCPU, "drd_idle_cpu_%")
	b.ReportMetric(drdRSS, "drd_rss_MiB")
	b.ReportMetric(rssMiB(drd.Process.Pid, "VmHWM:"), "drd_peak_rss_MiB")
	b.ReportMetric(anchorCPU, "exporters_idle_cpu_%")
	b.ReportMetric(anchorRSS, "exporters_rss_MiB")

	pgExec(b, sb.DSN("postgres"), "SELECT pg_wal_replay_pause()")
	began := time.Now()
	for alertState(b, prom.URL, "ReplicationLagHigh", map[string]string{"cluster": "orders"}) != "firing" {
		if time.Since(began) > 5*time.Minute {
			b.Fatal("ReplicationLagHigh did not fire within 5 minutes")
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.ReportMetric(time.Since(began).Seconds(), "pause_to_firing_s")
	resumeReplay(b, sb.DSN("postgres"))
}

// cpuSeconds is a process's user+system CPU time.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// rssMiB is a process's resident set size (field VmRSS:) or its peak
// (VmHWM:).
func rssMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
