package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/internal/testenv/oapifake"
	"github.com/drkit/drkit/storage"
	s3store "github.com/drkit/drkit/storage/s3"
)

var resumed = regexp.MustCompile(`resuming upload.*parts_stored=[1-9]`)

// TestOutscaleCopyKilledInEachStage: drctl snapshots copy of an OUTSCALE
// entry (FAKE OAPI, two real MinIOs as the Regions' OOS) is SIGKILLed in
// the export, in the copy of the 120 MiB object and in the import; each
// next run resumes: one export task, the stored parts not sent again, one
// import, the copy holding the source's bytes, the transfer objects gone.
func TestOutscaleCopyKilledInEachStage(t *testing.T) {
	cloud := oapifake.NewCloud("AKTEST")
	cloud.ExportSize, cloud.Steps = 120<<20, 8
	t.Cleanup(cloud.Close)
	ctx := context.Background()
	urls := map[string]string{}
	eps := map[string]string{}
	for _, name := range []string{"eu-west-2", "us-east-2"} {
		srv := testenv.StartMinIO(t)
		st, err := storage.Open(ctx, srv.StoreURL(""), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		root := st.(*s3store.Store)
		u, _ := url.Parse(srv.Endpoint)
		r := cloud.AddRegion(name, oapifake.OOS{Bucket: srv.Bucket, Store: root, Host: u.Host,
			Presign: func(ctx context.Context, key string) (string, error) { return root.Presign(ctx, key, time.Hour) }})
		urls[name], eps[name] = srv.StoreURL("drkit-transfer"), r.Endpoint()
	}
	src := cloud.AddSnapshot("eu-west-2", "vol-1", 10, nil)
	state := t.TempDir()
	cfgPath := writeFile(t, fmt.Sprintf(`drd: {state_dir: '%s'}
storage: {part_size: 5MiB, concurrency: 2}
regions: [{name: a, store: 'file://%s'}]
ec2: {poll_interval: 100ms}
outscale:
  endpoints: {eu-west-2: '%s', us-east-2: '%s'}
  oos: {eu-west-2: '%s', us-east-2: '%s'}
volume_snapshots:
  - {name: db, provider: outscale, source_region: eu-west-2, to: [us-east-2], schedule: '@daily', filters: {ids: [%s]}}
`, state, t.TempDir(), eps["eu-west-2"], eps["us-east-2"], urls["eu-west-2"], urls["us-east-2"], src.ID))
	t.Setenv("OSC_ACCESS_KEY", "AKTEST")
	t.Setenv("OSC_SECRET_KEY", "secret")
	bin := testenv.Binary(t, "drctl")
	killWhen := func(stage string, cond func() bool) string {
		t.Helper()
		var log strings.Builder
		cmd := exec.Command(bin, "snapshots", "copy", "--config", cfgPath, "--name", "db", "--log-level", "info")
		cmd.Stderr = &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, time.Minute, "drctl in the "+stage, cond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return log.String()
	}
	killWhen("export", func() bool { return cloud.Calls("CreateSnapshotExportTask") == 1 })
	// Parts stored: the upload's state file (a header line, then a line per
	// part) holds three or more parts.
	partsStored := func() int {
		files, _ := filepath.Glob(filepath.Join(state, "uploads", "*.jsonl"))
		n := 0
		for _, f := range files {
			b, _ := os.ReadFile(f)
			n = max(n, strings.Count(string(b), "\n")-1)
		}
		return n
	}
	killWhen("copy", func() bool { return partsStored() >= 3 })
	afterCopyKill := killWhen("import", func() bool { return cloud.Calls("CreateSnapshot") >= 1 })
	if !resumed.MatchString(afterCopyKill) {
		t.Errorf("the run after the kill in the copy did not resume its upload (no \"resuming upload\" with parts stored):\n%s", afterCopyKill)
	}

	var stderr strings.Builder
	cmd := exec.Command(bin, "snapshots", "copy", "--config", cfgPath, "--name", "db", "--json")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the last run: %v\n%s%s", err, out, stderr.String())
	}
	if n := cloud.Calls("CreateSnapshotExportTask"); n != 1 {
		t.Errorf("%d export tasks started over the runs, want 1", n)
	}
	if n := cloud.Calls("CreateSnapshot"); n != 1 {
		t.Errorf("CreateSnapshot called %d times over the runs, want 1 (the killed run's import found again)", n)
	}
	var copies []oapifake.Snapshot
	for _, s := range cloud.Snapshots("us-east-2") {
		if s.Tags["drkit:job"] == "db" {
			copies = append(copies, s)
		}
	}
	if len(copies) != 1 || copies[0].Digest != src.Digest || copies[0].State != "completed" {
		t.Fatalf("copies in us-east-2: %+v; want one completed copy with the source's bytes %s\n%s", copies, src.Digest, out)
	}
	for name, u := range urls {
		st, err := storage.Open(ctx, u, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for o, err := range st.List(ctx, "") {
			if err == nil {
				t.Errorf("transfer object %s left in %s", o.Key, name)
			}
		}
	}
}
