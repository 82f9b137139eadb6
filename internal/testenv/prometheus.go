package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Prometheus is a throwaway Prometheus server.
type Prometheus struct {
	// Config is the prometheus.yml body (option; default: scrape nothing, 1s interval).
	// Rule files it names may be absolute paths.
	Config string

	// URL is the server's base URL; set by Start.
	URL string
	// Dir is the server's folder; set by Start.
	Dir string

	proc *proc
}

// DefaultPrometheusConfig evaluates rules and scrapes every second, so alert tests
// do not wait on production intervals.
const DefaultPrometheusConfig = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"

// Pid returns the server's process id.
func (p *Prometheus) Pid() int { return p.proc.Pid() }

func (p *Prometheus) start(ctx context.Context, tb testing.TB) error {
	if docker, err := useDocker(); err != nil || docker {
		return dockerOr(err, func() error { return p.startDocker(ctx, tb) })
	}
	bin, err := findBinary("prometheus")
	if err != nil {
		return err
	}
	if p.Dir, err = tempDir("prometheus", account{}); err != nil {
		return err
	}
	registerCleanup(tb, cleanup(&p.proc, p.Dir, syscall.SIGTERM))
	if p.Config == "" {
		p.Config = DefaultPrometheusConfig
	}
	cfgPath := filepath.Join(p.Dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(p.Config), 0o644); err != nil {
		return fmt.Errorf("write prometheus.yml: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p.URL = "http://" + addr
	p.proc, err = startProc("prometheus", account{}, filepath.Join(p.Dir, "prometheus.log"), nil, bin,
		"--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(p.Dir, "data"),
		"--web.listen-address="+addr, "--web.enable-lifecycle", "--log.level=warn")
	if err != nil {
		return err
	}
	return p.proc.waitReady(ctx, func(ctx context.Context) error { return httpOK(ctx, p.URL+"/-/ready") })
}

// Promtool runs promtool with args and returns its combined output; the test fails
// (with the `make deps` hint) when promtool is not installed.
func Promtool(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	bin, err := findBinary("promtool")
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool %v: %w", args, err)
	}
	return string(out), nil
}
