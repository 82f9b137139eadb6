// Package deploy holds drkit's packaging and operations files; these tests
// check the Prometheus rules (promtool) and Grafana dashboards, and that every
// drkit metric they query is one a running drd exports.
package deploy

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
)

func TestPrometheusRules(t *testing.T) {
	if out, err := testenv.Promtool(t, "check", "rules", "prometheus/drkit.rules.yml"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cmd := exec.Command("promtool", "test", "rules", "drkit.rules_test.yml")
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

type dashboard struct {
	Inputs     []any `json:"__inputs"`
	Templating struct {
		List []struct{ Name, Type string }
	}
	Panels []struct {
		Title      string
		Datasource struct{ UID string }
		Targets    []struct{ Expr string }
	}
}

func dashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, _ := filepath.Glob("grafana/dashboards/*.json")
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

// Dashboards choose their datasource through a variable (importable into any
// Grafana), not __inputs, and every panel uses it.
func TestDashboardShape(t *testing.T) {
	for f, d := range dashboards(t) {
		if d.Inputs != nil {
			t.Errorf("%s uses __inputs", f)
		}
		if !slices.ContainsFunc(d.Templating.List, func(v struct{ Name, Type string }) bool { return v.Type == "datasource" && v.Name == "datasource" }) {
			t.Errorf("%s has no datasource variable", f)
		}
		for _, p := range d.Panels {
			if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q does not query through ${datasource}", f, p.Title)
			}
		}
	}
}

var metricName = regexp.MustCompile(`\bdrkit_[a-z0-9_]+`)

// queriedMetrics returns every drkit metric the rules and dashboards query.
func queriedMetrics(t *testing.T) []string {
	t.Helper()
	rules, err := os.ReadFile("prometheus/drkit.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(rules)
	for _, d := range dashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				text += "\n" + tg.Expr
			}
		}
	}
	names := metricName.FindAllString(text, -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// scrapeNames returns the names of the series drd exposes.
func scrapeNames(addr string) map[string]bool {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// scrapeValue returns the value of the series (name{labels} exactly as drd
// writes it) on addr's /metrics, or -1 when it is not there.
func scrapeValue(addr, series string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
