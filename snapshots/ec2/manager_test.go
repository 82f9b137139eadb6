package ec2

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/drkit/drkit/internal/testenv/ec2fake"
)

// These tests run against ec2fake, a FAKE EC2 API (no real EC2 runs here),
// through the real aws-sdk-go-v2 client: signing, the Query protocol, XML
// parsing, retries and waiters are the SDK's own.

const src, east, south = "eu-west-1", "us-east-1", "ap-south-1"

func newManager(t *testing.T, f *ec2fake.Server) *Manager {
	t.Helper()
	return &Manager{Clients: &SDKClients{Options: []func(*awsec2.Options){f.Options()}}, MaxConcurrent: 5, Timeout: 20 * time.Second,
		PollMin: 20 * time.Millisecond, PollMax: 50 * time.Millisecond}
}

func snapSpec(tags map[string]string, keep int) Spec {
	return Spec{Kind: KindSnapshot, Name: "db", SourceRegion: src, Tags: tags, To: []string{east}, Keep: keep}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// copiesOf returns the fake's resources in region tagged as the entry's copies.
func snapshotCopies(f *ec2fake.Server, region, job string) []ec2fake.Snapshot {
	var out []ec2fake.Snapshot
	for _, s := range f.Snapshots(region) {
		if s.Tags[TagJob] == job {
			out = append(out, s)
		}
	}
	return out
}

func TestCopyImagesToTwoRegionsKeepsNewest(t *testing.T) {
	f := ec2fake.Start(t, 100*time.Millisecond)
	now := time.Now()
	var images []string
	for i := range 3 {
		s1 := f.AddSnapshot(src, "vol-root", now.Add(time.Duration(i-3)*time.Hour), nil)
		s2 := f.AddSnapshot(src, "vol-data", now.Add(time.Duration(i-3)*time.Hour), nil)
		images = append(images, f.AddImage(src, "web-"+string(rune('a'+i)), now.Add(time.Duration(i-3)*time.Hour), map[string]string{"role": "web"}, s1, s2))
	}
	f.AddImage(src, "other", now, map[string]string{"role": "db"})
	m := newManager(t, f)
	s := Spec{Kind: KindImage, Name: "web", SourceRegion: src, Tags: map[string]string{"role": "web"}, To: []string{east, south}, Keep: 2}
	for _, region := range s.To {
		rep, err := m.CopyTo(ctx(t), s, region, false)
		if err != nil {
			t.Fatalf("copy to %s: %v", region, err)
		}
		if len(rep.Copied) != 2 {
			t.Fatalf("copied %v to %s, want the 2 newest of %v", rep.Copied, region, images)
		}
		var got []string
		for _, im := range f.Images(region) {
			if im.State != "available" || im.Tags[TagJob] != "web" || im.Tags[TagSourceRegion] != src ||
				!strings.HasPrefix(im.Description, "drkit:web copy of ") {
				t.Errorf("copy %+v lacks its state, tags or description", im)
			}
			got = append(got, im.Source)
			if len(im.Snapshots) != 2 {
				t.Errorf("copy %s has snapshots %v, want 2", im.ID, im.Snapshots)
			}
		}
		slices.Sort(got)
		if want := images[1:]; !slices.Equal(got, want) {
			t.Errorf("%s holds copies of %v, want the newest two %v", region, got, want)
		}
		for _, sn := range f.Snapshots(region) {
			if sn.Tags[TagJob] != "web" {
				t.Errorf("snapshot %s of a copied image is not tagged: %v", sn.ID, sn.Tags)
			}
		}
	}
	calls := f.Calls("CopyImage")
	if rep, err := m.CopyTo(ctx(t), s, east, false); err != nil || len(rep.Copied) != 0 || f.Calls("CopyImage") != calls {
		t.Errorf("a second run copied again: %+v, %v (CopyImage calls %d -> %d)", rep.Copied, err, calls, f.Calls("CopyImage"))
	}
}

func TestRetryAfterCrashBetweenCopyAndTag(t *testing.T) {
	f := ec2fake.Start(t, 50*time.Millisecond)
	f.AddSnapshot(src, "vol-1", time.Now().Add(-time.Hour), map[string]string{"backup": "yes"})
	m := newManager(t, f)
	s := snapSpec(map[string]string{"backup": "yes"}, 0)
	f.FailNext("CreateTags", "UnauthorizedOperation") // the copy call succeeded, the tag did not
	if _, err := m.CopyTo(ctx(t), s, east, false); err == nil || !strings.Contains(err.Error(), "tag copy") {
		t.Fatalf("want the tag failure reported, got %v", err)
	}
	if n := len(f.Snapshots(east)); n != 1 {
		t.Fatalf("%d snapshots in %s after the failed tag, want the 1 untagged copy", n, east)
	}
	rep, err := m.CopyTo(ctx(t), s, east, false)
	if err != nil {
		t.Fatal(err)
	}
	if f.Calls("CopySnapshot") != 1 || len(rep.Copied) != 0 || len(rep.Plan.Tag) != 1 {
		t.Errorf("retry copied again (CopySnapshot calls %d, copied %v, tagged %d); it must find the copy by its description",
			f.Calls("CopySnapshot"), rep.Copied, len(rep.Plan.Tag))
	}
	if got := snapshotCopies(f, east, "db"); len(got) != 1 || got[0].Tags[TagSourceTime] == "" {
		t.Errorf("the copy was not tagged on retry: %+v", got)
	}
}

func TestConcurrentCopiesAreLimited(t *testing.T) {
	f := ec2fake.Start(t, 200*time.Millisecond)
	for i := range 8 {
		f.AddSnapshot(src, "vol-"+string(rune('a'+i)), time.Now().Add(-time.Hour), map[string]string{"backup": "yes"})
	}
	f.LimitPendingCopies(2) // another tool holds the rest of the region's quota
	m := newManager(t, f)
	m.MaxConcurrent = 3
	rep, err := m.CopyTo(ctx(t), snapSpec(map[string]string{"backup": "yes"}, 0), east, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Copied) != 8 || len(snapshotCopies(f, east, "db")) != 8 {
		t.Errorf("copied %d, want all 8", len(rep.Copied))
	}
	if mp := f.MaxPending(east); mp != 2 {
		t.Errorf("at most %d copies were pending at once, want the region's limit 2 reached and kept", mp)
	}

	g := ec2fake.Start(t, 200*time.Millisecond)
	for i := range 8 {
		g.AddSnapshot(src, "vol-"+string(rune('a'+i)), time.Now().Add(-time.Hour), map[string]string{"backup": "yes"})
	}
	m = newManager(t, g)
	m.MaxConcurrent = 3
	if _, err := m.CopyTo(ctx(t), snapSpec(map[string]string{"backup": "yes"}, 0), east, false); err != nil {
		t.Fatal(err)
	}
	if mp := g.MaxPending(east); mp != 3 {
		t.Errorf("at most %d copies were pending at once, want max_concurrent_copies 3 reached and kept", mp)
	}
}

func TestFailedNewestCopyKeepsTheOlderGoodOne(t *testing.T) {
	f := ec2fake.Start(t, 50*time.Millisecond)
	old := f.AddSnapshot(src, "vol-1", time.Now().Add(-48*time.Hour), map[string]string{"backup": "yes"})
	m := newManager(t, f)
	s := snapSpec(map[string]string{"backup": "yes"}, 1)
	if _, err := m.CopyTo(ctx(t), s, east, false); err != nil {
		t.Fatal(err)
	}
	newer := f.AddSnapshot(src, "vol-1", time.Now().Add(-time.Hour), map[string]string{"backup": "yes"})
	f.FailCopies(1)
	rep, err := m.CopyTo(ctx(t), s, east, false)
	if err == nil || len(rep.Failed) != 1 {
		t.Fatalf("a failed copy must be reported: %+v, %v", rep.Failed, err)
	}
	prep, err := m.Prune(ctx(t), s, east, false)
	if err != nil {
		t.Fatal(err)
	}
	copies := snapshotCopies(f, east, "db")
	if len(copies) != 1 || copies[0].Source != old || copies[0].State != "completed" || len(prep.Deleted) != 0 {
		t.Fatalf("after the newest copy failed, %s holds %+v (pruned %v); want only the older good copy of %s", east, copies, prep.Deleted, old)
	}
	if _, err := m.CopyTo(ctx(t), s, east, false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Prune(ctx(t), s, east, false); err != nil {
		t.Fatal(err)
	}
	copies = snapshotCopies(f, east, "db")
	if len(copies) != 1 || copies[0].Source != newer {
		t.Errorf("once the newer copy is good, keep 1 must hold it alone; got %+v", copies)
	}
}

func TestPruneSparesSnapshotsAKeptImageUses(t *testing.T) {
	f := ec2fake.Start(t, 50*time.Millisecond)
	now := time.Now()
	tags := func(src string, age time.Duration) map[string]string {
		return map[string]string{TagJob: "web", TagSourceID: src, TagSourceRegion: "eu-west-1", TagSourceTime: now.Add(-age).UTC().Format(time.RFC3339)}
	}
	shared := f.AddSnapshot(east, "vol-ffffffff", now, nil)
	ownOld := f.AddSnapshot(east, "vol-ffffffff", now, nil)
	oldImg := f.AddImage(east, "web-old", now, tags("ami-old", 72*time.Hour), shared, ownOld)
	keptImg := f.AddImage(east, "web-new", now, tags("ami-new", time.Hour), shared)
	m := newManager(t, f)
	s := Spec{Kind: KindImage, Name: "web", SourceRegion: src, Tags: map[string]string{"role": "web"}, To: []string{east}, Keep: 1}

	dry, err := m.Prune(ctx(t), s, east, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Images(east)) != 2 || !slices.Contains(dry.Deleted, oldImg) {
		t.Fatalf("dry run: deleted %v, images now %d; want %s reported and nothing deleted", dry.Deleted, len(f.Images(east)), oldImg)
	}
	rep, err := m.Prune(ctx(t), s, east, false)
	if err != nil {
		t.Fatal(err)
	}
	if im := f.Images(east); len(im) != 1 || im[0].ID != keptImg {
		t.Errorf("images left: %+v, want %s only", im, keptImg)
	}
	var left []string
	for _, sn := range f.Snapshots(east) {
		left = append(left, sn.ID)
	}
	if !slices.Equal(left, []string{shared}) || !slices.Equal(rep.Spared, []string{shared}) || !slices.Contains(rep.Deleted, ownOld) {
		t.Errorf("snapshots left %v, spared %v, deleted %v; want the shared %s kept and %s deleted", left, rep.Spared, rep.Deleted, shared, ownOld)
	}

	// A volume-snapshot entry whose expired copy a registered image uses.
	used := f.AddSnapshot(east, "vol-ffffffff", now, map[string]string{TagJob: "db", TagSourceID: "snap-a", TagSourceTime: now.Add(-72 * time.Hour).UTC().Format(time.RFC3339), TagSeries: "vol-1"})
	f.AddSnapshot(east, "vol-ffffffff", now, map[string]string{TagJob: "db", TagSourceID: "snap-b", TagSourceTime: now.Add(-time.Hour).UTC().Format(time.RFC3339), TagSeries: "vol-1"})
	f.AddImage(east, "built-from-copy", now, nil, used)
	srep, err := m.Prune(ctx(t), snapSpec(map[string]string{"backup": "yes"}, 1), east, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(srep.Spared, []string{used}) || len(srep.Deleted) != 0 {
		t.Errorf("spared %v, deleted %v; want %s spared (an image uses it)", srep.Spared, srep.Deleted, used)
	}
}

func TestThrottledAPIRetries(t *testing.T) {
	f := ec2fake.Start(t, 50*time.Millisecond)
	f.AddSnapshot(src, "vol-1", time.Now().Add(-time.Hour), map[string]string{"backup": "yes"})
	f.Throttle(4)
	m := newManager(t, f)
	rep, err := m.CopyTo(ctx(t), snapSpec(map[string]string{"backup": "yes"}, 0), east, false)
	if err != nil || len(rep.Copied) != 1 {
		t.Fatalf("throttled run: copied %v, %v; want the SDK's retries to get through", rep.Copied, err)
	}
	if n := f.Throttled(); n != 4 {
		t.Errorf("the fake throttled %d requests, want the 4 asked for (else the retries were not exercised)", n)
	}
}

func TestCopyTimeoutDeletesThePendingCopy(t *testing.T) {
	f := ec2fake.Start(t, time.Hour)
	f.AddSnapshot(src, "vol-1", time.Now().Add(-time.Hour), map[string]string{"backup": "yes"})
	m := newManager(t, f)
	m.Timeout = 300 * time.Millisecond
	rep, err := m.CopyTo(ctx(t), snapSpec(map[string]string{"backup": "yes"}, 0), east, false)
	if err == nil || !strings.Contains(err.Error(), "did not complete") || len(rep.Failed) != 1 {
		t.Fatalf("want a timed-out copy reported: %+v, %v", rep.Failed, err)
	}
	if n := len(f.Snapshots(east)); n != 0 {
		t.Errorf("%d snapshots left in %s; the timed-out copy must be deleted", n, east)
	}
}

func TestTakeThenCopyPerVolumeRetention(t *testing.T) {
	f := ec2fake.Start(t, 100*time.Millisecond)
	v1 := f.AddVolume(src, 10, map[string]string{"backup": "yes"})
	v2 := f.AddVolume(src, 20, map[string]string{"backup": "yes"})
	f.AddVolume(src, 30, map[string]string{"backup": "no"})
	m := newManager(t, f)
	s := Spec{Kind: KindSnapshot, Name: "vols", SourceRegion: src, VolumeTags: map[string]string{"backup": "yes"}, To: []string{east}, Keep: 1}
	if vols, _, err := m.Take(ctx(t), s, true); err != nil || len(vols) != 2 || len(f.Snapshots(src)) != 0 {
		t.Fatalf("dry-run take: %v, %v, %d snapshots made", vols, err, len(f.Snapshots(src)))
	}
	var first []string
	for range 2 {
		ids, _, err := m.Take(ctx(t), s, false)
		if err != nil || len(ids) != 2 {
			t.Fatalf("take: %v, %v", ids, err)
		}
		if first == nil {
			first = ids
		}
		rep, err := m.CopyTo(ctx(t), s, east, false)
		if err != nil || len(rep.Copied) != 2 {
			t.Fatalf("copy after take: copied %v, %v; want both fresh snapshots (it waits for them)", rep.Copied, err)
		}
		if _, err := m.Prune(ctx(t), s, east, false); err != nil {
			t.Fatal(err)
		}
	}
	copies := snapshotCopies(f, east, "vols")
	series := map[string]int{}
	for _, c := range copies {
		series[c.Tags[TagSeries]]++
		if slices.Contains(first, c.Source) {
			t.Errorf("copy %s of the first round's %s survived keep 1", c.ID, c.Source)
		}
	}
	if len(copies) != 2 || series[v1] != 1 || series[v2] != 1 {
		t.Errorf("copies per volume %v (%d copies); want keep 1 of each of %s and %s", series, len(copies), v1, v2)
	}
	// The source region keeps the newest taken snapshot of each volume (the
	// second Take pruned the first round's on its next run: run it again).
	if _, _, err := m.Take(ctx(t), s, false); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, sn := range f.Snapshots(src) {
		left = append(left, sn.ID)
		if slices.Contains(first, sn.ID) {
			t.Errorf("the first round's snapshot %s survived keep 1 in the source", sn.ID)
		}
	}
	if len(left) != 4 {
		t.Errorf("source holds %v; want the newest completed snapshot of each volume and the 2 just taken", left)
	}
}

func TestDryRunCopiesNothing(t *testing.T) {
	f := ec2fake.Start(t, 50*time.Millisecond)
	f.AddSnapshot(src, "vol-1", time.Now().Add(-time.Hour), map[string]string{"backup": "yes"})
	m := newManager(t, f)
	rep, err := m.CopyTo(ctx(t), snapSpec(map[string]string{"backup": "yes"}, 0), east, true)
	if err != nil || len(rep.Plan.Copy) != 1 || f.Calls("CopySnapshot") != 0 {
		t.Errorf("dry run: plan %+v, %v, CopySnapshot calls %d; want 1 planned and none made", rep.Plan.Copy, err, f.Calls("CopySnapshot"))
	}
}
