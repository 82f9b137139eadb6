package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func drctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "drkit.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheckPrintsRedactedConfig(t *testing.T) {
	p := writeFile(t, "regions:\n  - {name: a, store: 'file:///srv/a'}\nclusters:\n  - {name: c, engine: postgres, region: a, dsn: 'postgres://u:topsecret@h/db'}\n")
	code, out, errOut := drctl(t, "config", "check", "--config", p)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	if strings.Contains(out, "topsecret") || !strings.Contains(out, "u:REDACTED@h") {
		t.Errorf("output not redacted:\n%s", out)
	}
	if !strings.Contains(out, "listen: 127.0.0.1:9580") || !strings.Contains(out, "ship_to:") {
		t.Errorf("output lacks defaults:\n%s", out)
	}

	code, out, _ = drctl(t, "config", "check", "--config", p, "--json")
	var v map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("--json: exit %d, output not JSON:\n%s", code, out)
	}
	if strings.Contains(out, "topsecret") {
		t.Errorf("JSON output not redacted:\n%s", out)
	}
}

func TestConfigCheckFromEnvironment(t *testing.T) {
	p := writeFile(t, "regions: [{name: a, store: 'file:///srv/a'}]\n")
	t.Setenv("DRKIT_CONFIG", p)
	if code, _, errOut := drctl(t, "config", "check"); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestExitCodes(t *testing.T) {
	bad := writeFile(t, "regions:\n  - name: a\n    store: ftp://x\n")
	cases := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"bad config", []string{"config", "check", "--config", bad}, exitUsage, "drkit.yaml:3:"},
		{"missing config", []string{"config", "check", "--config", "/nonexistent/drkit.yaml"}, exitUsage, "does not exist"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"unknown flag", []string{"version", "--nope"}, exitUsage, "unknown flag"},
		{"extra argument", []string{"version", "x"}, exitUsage, `unknown command "x"`},
		{"version", []string{"version"}, exitOK, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := drctl(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			if !strings.Contains(errOut, tc.say) {
				t.Errorf("stderr lacks %q: %s", tc.say, errOut)
			}
		})
	}
}

func TestVersionJSONAndCompletion(t *testing.T) {
	code, out, _ := drctl(t, "version", "--json")
	var v struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" {
		t.Fatalf("version --json: exit %d output %q", code, out)
	}
	code, out, _ = drctl(t, "completion", "bash")
	if code != exitOK || !strings.Contains(out, "__start_drctl") {
		t.Fatalf("completion bash: exit %d, %.200s", code, out)
	}
}
