package outscale_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots/ec2"
	"github.com/drkit/drkit/snapshots/outscale"
)

// The Manager (planner, retention, jobs) over OUTSCALE, with a FAKE OAPI
// and two MinIOs: snapshots of the tagged volumes are taken on a run, the
// newest of each volume is copied across Regions through OOS, and on the
// next run the older copies are deleted while the newest stay.
func TestManagerTakesCopiesAndPrunes(t *testing.T) {
	w := newWorld(t, 1<<20, 0)
	w.cloud.Steps = 2
	vols := []string{w.cloud.AddVolume("eu-west-2", map[string]string{"backup": "true"}), w.cloud.AddVolume("eu-west-2", map[string]string{"backup": "true"})}
	w.cloud.AddVolume("eu-west-2", map[string]string{"backup": "false"})
	t.Setenv("OSC_ACCESS_KEY", accessKey)
	t.Setenv("OSC_SECRET_KEY", secretKey)
	cfg := &config.Config{
		Drd:      config.Drd{StateDir: t.TempDir()},
		EC2:      config.EC2{CopyTimeout: config.Duration(time.Minute), PollInterval: config.Duration(20 * time.Millisecond), MaxConcurrentCopies: 2},
		Outscale: config.Outscale{AccessKeyEnv: "OSC_ACCESS_KEY", SecretKeyEnv: "OSC_SECRET_KEY", DiskImageFormat: "raw", Endpoints: map[string]string{}, OOS: map[string]string{}},
		VolumeSnapshots: []config.SnapshotCopy{{MachineCopy: config.MachineCopy{Name: "db", Provider: "outscale", SourceRegion: "eu-west-2",
			To: []string{"us-east-2"}, Keep: 1, Job: config.Job{Schedule: "@daily"}}, Create: &config.CreateSnapshots{VolumeTags: map[string]string{"backup": "true"}}}},
	}
	for name, r := range w.regions {
		cfg.Outscale.Endpoints[name] = r.Endpoint()
		cfg.Outscale.OOS[name] = w.urls[name]
	}
	m := ec2.NewManager(cfg, nil)
	m.PollMin, m.PollMax = 20*time.Millisecond, 50*time.Millisecond
	s := ec2.Specs(cfg)[0]
	ctx := context.Background()

	var first []string
	for round := range 2 {
		taken, _, err := m.Take(ctx, s, false)
		if err != nil || len(taken) != 2 {
			t.Fatalf("round %d: took %v (%v), want a snapshot of each of the 2 tagged volumes", round, taken, err)
		}
		rep, err := m.CopyTo(ctx, s, "us-east-2", false)
		if err != nil || len(rep.Copied) != 2 {
			t.Fatalf("round %d: copied %v (%v), want 2", round, rep.Copied, err)
		}
		for _, id := range rep.Copied {
			c, _ := w.cloud.Snapshot("us-east-2", id)
			src, _ := w.cloud.Snapshot("eu-west-2", c.Tags[ec2.TagSourceID])
			if c.Tags[ec2.TagJob] != "db" || c.Digest != src.Digest || !slices.Contains(vols, c.Tags[ec2.TagSeries]) || !slices.Contains(taken, src.ID) {
				t.Errorf("round %d: copy %s: tags %v, digest %s (source %s: %s)", round, id, c.Tags, c.Digest, src.ID, src.Digest)
			}
		}
		prep, err := m.Prune(ctx, s, "us-east-2", false)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			first = rep.Copied
			if len(prep.Deleted) != 0 {
				t.Errorf("the first prune deleted %v", prep.Deleted)
			}
			continue
		}
		slices.Sort(prep.Deleted)
		if !slices.Equal(prep.Deleted, first) {
			t.Errorf("the second prune deleted %v, want the first round's copies %v (keep 1 per volume)", prep.Deleted, first)
		}
		for _, id := range rep.Copied {
			if _, ok := w.cloud.Snapshot("us-east-2", id); !ok {
				t.Errorf("the newest copy %s was deleted", id)
			}
		}
	}
	var names []string
	for _, j := range ec2.Jobs(cfg, m) {
		names = append(names, j.Job.Name)
	}
	if !slices.Equal(names, []string{"snapshots-db-take", "snapshots-db-to-us-east-2"}) {
		t.Errorf("jobs %v", names)
	}
}

// Without the keys in the environment the entries' runs fail saying which
// variables to set.
func TestManagerWithoutKeys(t *testing.T) {
	t.Setenv("OSC_ACCESS_KEY", "")
	cfg := &config.Config{Outscale: config.Outscale{AccessKeyEnv: "OSC_ACCESS_KEY", SecretKeyEnv: "OSC_SECRET_KEY"},
		Images: []config.ImageCopy{{MachineCopy: config.MachineCopy{Name: "web", Provider: "outscale", SourceRegion: "eu-west-2", To: []string{"us-east-2"}}}}}
	m := ec2.NewManager(cfg, nil)
	_, err := m.CopyTo(context.Background(), ec2.Specs(cfg)[0], "us-east-2", true)
	if err == nil || err.Error() != "outscale: set OSC_ACCESS_KEY and OSC_SECRET_KEY to the access key and secret key of the account (EIM user) that copies" {
		t.Fatalf("err %v", err)
	}
}

var _ = outscale.Endpoint
