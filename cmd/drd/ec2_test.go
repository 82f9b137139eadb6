package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv/ec2fake"
)

// TestDrdScheduledImageCopy runs drd with an images entry against ec2fake, a
// FAKE EC2 API (no real EC2 runs here): the scheduled job copies the image,
// records its run in the jobs region, serves it in /api/v1/schedules and
// exports the copy's last success for the CopyStale alert.
func TestDrdScheduledImageCopy(t *testing.T) {
	f := ec2fake.Start(t, 200*time.Millisecond)
	snap := f.AddSnapshot("eu-west-1", "vol-1", time.Now().Add(-time.Hour), nil)
	img := f.AddImage("eu-west-1", "web-1", time.Now().Add(-time.Hour), map[string]string{"role": "web"}, snap)
	addr := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`drd: {listen: '%s'}
regions: [{name: local, store: 'file://%s'}]
ec2:
  endpoints: {eu-west-1: '%s', us-east-1: '%s'}
  poll_interval: 100ms
images:
  - name: web
    source_region: eu-west-1
    filters: {tags: {role: web}}
    to: [us-east-1]
    schedule: '@every 2s'
    keep: 2
`, addr, t.TempDir(), f.URL, f.URL))
	// The child inherits the environment: the SDK's credentials chain reads these.
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "AKIDFAKE", "AWS_SECRET_ACCESS_KEY": "fake-secret",
		"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	_, logs := startDrd(t, "--config", cfg)

	want := `drkit_copy_last_success_timestamp_seconds{kind="image",source_region="eu-west-1",target_region="us-east-1"}`
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := get(t, "http://"+addr+"/metrics")
		if strings.Contains(body, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s; logs:\n%s", want, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	copies := f.Images("us-east-1")
	if len(copies) != 1 || copies[0].Source != img || copies[0].State != "available" {
		t.Fatalf("us-east-1 holds %+v, want one available copy of %s", copies, img)
	}
	// Wait for a second run: it must find the copy and not copy again.
	for {
		code, body := get(t, "http://"+addr+"/api/v1/schedules")
		if code == http.StatusOK && strings.Contains(body, `"name":"images-web-to-us-east-1"`) && strings.Count(body, `"status":"ok"`) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/v1/schedules has no two ok runs within 30s: %d\n%.2000s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := f.Calls("CopyImage"); n != 1 {
		t.Errorf("CopyImage called %d times across runs, want 1", n)
	}
}
