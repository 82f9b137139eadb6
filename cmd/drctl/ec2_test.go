package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv/ec2fake"
)

// ec2Config points drctl at ec2fake, a FAKE EC2 API (no real EC2 runs here),
// through the config's endpoints and the SDK's environment credentials.
func ec2Config(t *testing.T, f *ec2fake.Server) string {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return writeFile(t, fmt.Sprintf(`regions: [{name: a, store: 'file://%s'}]
ec2:
  endpoints: {eu-west-1: '%s', us-east-1: '%s'}
  poll_interval: 100ms
volume_snapshots:
  - name: db
    source_region: eu-west-1
    filters: {tags: {backup: "yes"}}
    to: [us-east-1]
    schedule: '@daily'
    keep: 1
images:
  - name: web
    source_region: eu-west-1
    filters: {tags: {role: web}}
    to: [us-east-1]
    schedule: '@daily'
`, t.TempDir(), f.URL, f.URL))
}

func TestSnapshotsListCopyPrune(t *testing.T) {
	f := ec2fake.Start(t, 150*time.Millisecond)
	old := f.AddSnapshot("eu-west-1", "vol-1", time.Now().Add(-48*time.Hour), map[string]string{"backup": "yes"})
	cfg := ec2Config(t, f)

	code, out, errOut := drctl(t, "snapshots", "list", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "copy "+old) {
		t.Fatalf("list: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	code, out, _ = drctl(t, "snapshots", "copy", "--dry-run", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "would copy "+old) || f.Calls("CopySnapshot") != 0 {
		t.Fatalf("copy --dry-run: exit %d, %d copies made, stdout:\n%s", code, f.Calls("CopySnapshot"), out)
	}
	if code, out, errOut = drctl(t, "snapshots", "copy", "--config", cfg); code != exitOK || !strings.Contains(out, "db to us-east-1: copied snap-") {
		t.Fatalf("copy: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}

	newer := f.AddSnapshot("eu-west-1", "vol-1", time.Now().Add(-time.Hour), map[string]string{"backup": "yes"})
	code, out, errOut = drctl(t, "snapshots", "copy", "--name", "db", "--to", "us-east-1", "--json", "--config", cfg)
	var reps []struct {
		Entry  string   `json:"entry"`
		Copied []string `json:"copied"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &reps) != nil || len(reps) != 1 || len(reps[0].Copied) != 1 {
		t.Fatalf("copy --json: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	code, out, _ = drctl(t, "snapshots", "prune", "--dry-run", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "would delete snap-") || len(f.Snapshots("us-east-1")) != 2 {
		t.Fatalf("prune --dry-run: exit %d, %d copies left, stdout:\n%s", code, len(f.Snapshots("us-east-1")), out)
	}
	if code, out, _ = drctl(t, "snapshots", "prune", "--config", cfg); code != exitOK {
		t.Fatalf("prune: exit %d:\n%s", code, out)
	}
	left := f.Snapshots("us-east-1")
	if len(left) != 1 || left[0].Source != newer {
		t.Errorf("after prune (keep 1) us-east-1 holds %+v, want the copy of %s only", left, newer)
	}
}

func TestMachineCommandsBadInput(t *testing.T) {
	f := ec2fake.Start(t, time.Millisecond)
	cfg := ec2Config(t, f)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"images", "list", "--name", "nope"}, exitUsage, `no image entry is called "nope"`},
		{[]string{"images", "copy", "--to", "ap-south-1"}, exitUsage, "web does not copy to ap-south-1"},
		{[]string{"snapshots", "prune", "--bogus"}, exitUsage, "unknown flag"},
	}
	for _, tc := range cases {
		code, _, errOut := drctl(t, append(tc.args, "--config", cfg)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("drctl %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.want)
		}
	}
	// An API that refuses the credentials: the error names the call and the code.
	f.FailNext("DescribeImages", "AuthFailure")
	code, _, errOut := drctl(t, "images", "list", "--config", cfg)
	if code != exitFailure || !strings.Contains(errOut, "describe images in eu-west-1") || !strings.Contains(errOut, "AuthFailure") {
		t.Errorf("refused credentials: exit %d, stderr %q", code, errOut)
	}
}
