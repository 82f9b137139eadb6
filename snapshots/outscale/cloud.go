package outscale

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	osc "github.com/outscale/osc-sdk-go/v2"

	"github.com/drkit/drkit/snapshots/ec2"
)

// Cloud is OUTSCALE's ec2.Cloud in one Region: the Manager's planner,
// retention and jobs run on it as on EC2's; Copy is the export → OOS →
// import transfer.
type Cloud struct {
	*Client
	// Source returns the Cloud of another Region (a copy's source).
	Source func(ctx context.Context, region string) (*Cloud, error)
	// OOS is the Region's transfer bucket (nil: no copies into or out of
	// the Region).
	OOS Bucket
	// Format is the export's disk image format (qcow2 or raw).
	Format string
	// Timeout bounds each wait of a transfer; PollMin and PollMax its polls.
	Timeout, PollMin, PollMax time.Duration
	// Progress, if set, is told each transfer's progress.
	Progress func(Progress)
}

var _ ec2.Cloud = (*Cloud)(nil)

// tagFilter is OAPI's Tags filter: "key=value" each.
func tagFilter(tags map[string]string) *[]string {
	if len(tags) == 0 {
		return nil
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, k+"="+tags[k])
	}
	return &out
}

// List implements ec2.Cloud.
func (c *Cloud) List(ctx context.Context, k ec2.Kind, q ec2.Query) ([]ec2.Resource, error) {
	var out []ec2.Resource
	if k == ec2.KindImage {
		f := osc.FiltersImage{Tags: tagFilter(q.Tags)}
		if len(q.IDs) > 0 {
			f.ImageIds = &q.IDs
		}
		if q.Pending {
			f.States = &[]string{"pending"}
		}
		list, err := c.images(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("read images in %s: %w", c.Region, err)
		}
		for _, im := range list {
			out = append(out, imageResource(im, c.Region))
		}
	} else {
		f := osc.FiltersSnapshot{Tags: tagFilter(q.Tags)}
		if len(q.IDs) > 0 {
			f.SnapshotIds = &q.IDs
		}
		if q.Pending {
			f.States = &[]string{"pending", "in-queue"}
		}
		list, err := c.snapshots(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("read snapshots in %s: %w", c.Region, err)
		}
		for _, s := range list {
			out = append(out, snapshotResource(s, c.Region))
		}
	}
	// OAPI filters descriptions by equality: the prefix is matched here.
	if q.DescPrefix != "" {
		out = slices.DeleteFunc(out, func(r ec2.Resource) bool { return !strings.HasPrefix(r.Description, q.DescPrefix) })
	}
	return out, nil
}

func tagMap(tags []osc.ResourceTag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}

func imageResource(im osc.Image, region string) ec2.Resource {
	r := ec2.Resource{Kind: ec2.KindImage, ID: im.GetImageId(), Region: region, Name: im.GetImageName(),
		Description: im.GetDescription(), Tags: tagMap(im.GetTags())}
	r.Created, _ = time.Parse(time.RFC3339, im.GetCreationDate())
	switch im.GetState() {
	case "available":
		r.State = ec2.StateAvailable
	case "pending":
		r.State = ec2.StatePending
	default: // failed, deleted
		r.State = ec2.StateFailed
	}
	for _, bd := range im.GetBlockDeviceMappings() {
		if id := bd.GetBsu().SnapshotId; id != nil {
			r.Snapshots = append(r.Snapshots, *id)
		}
	}
	return r
}

func snapshotResource(s osc.Snapshot, region string) ec2.Resource {
	r := ec2.Resource{Kind: ec2.KindSnapshot, ID: s.GetSnapshotId(), Region: region, Description: s.GetDescription(),
		Tags: tagMap(s.GetTags()), Volume: s.GetVolumeId()}
	r.Name = r.Tags["Name"]
	r.Created, _ = time.Parse(time.RFC3339, s.GetCreationDate())
	switch s.GetState() {
	case "completed":
		r.State = ec2.StateAvailable
	case "pending", "in-queue", "importing":
		r.State = ec2.StatePending
	default: // error, deleting
		r.State = ec2.StateFailed
	}
	return r
}

// Copy implements ec2.Cloud: the whole transfer, through the import's
// completion.
func (c *Cloud) Copy(ctx context.Context, s ec2.Spec, src ec2.Resource, desc string) (string, error) {
	from, err := c.Source(ctx, s.SourceRegion)
	if err != nil {
		return "", err
	}
	if from.OOS == nil || c.OOS == nil {
		return "", fmt.Errorf("entry %s: outscale.oos names no transfer bucket for %s or %s", s.Name, s.SourceRegion, c.Region)
	}
	t := &Transfer{Job: s.Name, Kind: s.Kind, From: from.Client, To: c.Client, FromOOS: from.OOS, ToOOS: c.OOS, Format: c.Format,
		Desc: desc, Timeout: c.Timeout, PollMin: c.PollMin, PollMax: c.PollMax, Progress: c.Progress, Log: c.log}
	res, err := t.Run(ctx, src.ID)
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// Finish implements ec2.Finisher. A pending copy an earlier run imported
// (and was stopped in) is waited for and its transfer objects removed; an
// available copy's leftover objects are removed; and so are those of a
// source this run neither copies nor keeps a copy of (it left retention
// after a failed transfer). A source this run copies keeps what a failure
// left, for the next run to resume.
func (c *Cloud) Finish(ctx context.Context, s ec2.Spec, pl ec2.Plan) error {
	from, err := c.Source(ctx, s.SourceRegion)
	if err != nil {
		return err
	}
	if from.OOS == nil || c.OOS == nil {
		return nil
	}
	t := &Transfer{Job: s.Name, Kind: s.Kind, From: from.Client, To: c.Client, FromOOS: from.OOS, ToOOS: c.OOS,
		Timeout: c.Timeout, PollMin: c.PollMin, PollMax: c.PollMax, Progress: c.Progress, Log: c.log}
	keep := map[string]bool{}
	for _, src := range pl.Copy {
		keep[src.ID] = true
	}
	var errs []error
	for _, cp := range pl.Keep {
		src := cp.SourceID()
		if src == "" {
			continue
		}
		if cp.State == ec2.StatePending {
			if _, err := t.Finish(ctx, src, cp.ID); err != nil {
				keep[src] = true // the failed import's objects stay for a retry
				errs = append(errs, err)
			}
		}
	}
	srcs, err := t.sources(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, src := range srcs {
		if !keep[src] {
			t.cleanup(ctx, src)
		}
	}
	return errors.Join(errs...)
}

// AtCopyLimit implements ec2.Cloud: OAPI has no such limit to wait out.
func (c *Cloud) AtCopyLimit(error) bool { return false }

// Tag implements ec2.Cloud.
func (c *Cloud) Tag(ctx context.Context, ids []string, tags map[string]string) error {
	return c.Client.Tag(ctx, ids, tags)
}

// Wait implements ec2.Cloud.
func (c *Cloud) Wait(ctx context.Context, k ec2.Kind, id string, timeout, minD, maxD time.Duration) error {
	t := &Transfer{Timeout: timeout, PollMin: minD, PollMax: maxD}
	return t.poll(ctx, string(k)+" "+id, func(ctx context.Context) (bool, error) {
		rs, err := c.List(ctx, k, ec2.Query{IDs: []string{id}})
		if err != nil {
			return false, err
		}
		if len(rs) != 1 {
			return false, fmt.Errorf("%s %s not found in %s", k, id, c.Region)
		}
		switch rs[0].State {
		case ec2.StateAvailable:
			return true, nil
		case ec2.StateFailed:
			return false, fmt.Errorf("%s %s in %s failed", k, id, c.Region)
		}
		return false, nil
	})
}

// notFound: OAPI answers a missing resource with HTTP 400 and an
// InvalidResource error.
func notFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Type == "InvalidResource" || ae.Status == 404)
}

// Deregister implements ec2.Cloud (DeleteImage).
func (c *Cloud) Deregister(ctx context.Context, id string) error {
	if err := c.deleteImage(ctx, id); err != nil && !notFound(err) {
		return err
	}
	return nil
}

// DeleteSnapshot implements ec2.Cloud.
func (c *Cloud) DeleteSnapshot(ctx context.Context, id string) error {
	if err := c.deleteSnapshot(ctx, id); err != nil && !notFound(err) {
		return err
	}
	return nil
}

// Volumes implements ec2.Cloud.
func (c *Cloud) Volumes(ctx context.Context, tags map[string]string) ([]string, error) {
	list, err := c.volumes(ctx, osc.FiltersVolume{Tags: tagFilter(tags)})
	if err != nil {
		return nil, fmt.Errorf("read volumes in %s: %w", c.Region, err)
	}
	var out []string
	for _, v := range list {
		out = append(out, v.GetVolumeId())
	}
	return out, nil
}

// Snapshot implements ec2.Cloud: CreateSnapshot of the volume, then its
// tags (OAPI's CreateSnapshot takes none).
func (c *Cloud) Snapshot(ctx context.Context, volume, desc string, tags map[string]string) (string, error) {
	s, err := c.snapshotVolume(ctx, volume, desc)
	if err != nil {
		return "", err
	}
	if err := c.Client.Tag(ctx, []string{s.GetSnapshotId()}, tags); err != nil {
		return s.GetSnapshotId(), fmt.Errorf("tag snapshot %s of %s (the next run does not see it as taken; delete it by hand): %w", s.GetSnapshotId(), volume, err)
	}
	return s.GetSnapshotId(), nil
}
