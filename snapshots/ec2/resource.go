package ec2

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/drkit/drkit/internal/config"
)

// Kind is what an entry copies.
type Kind string

// The kinds, as the kind label of drkit_copy_last_success_timestamp_seconds.
const (
	KindImage    Kind = "image"
	KindSnapshot Kind = "volume-snapshot"
)

// Tags drkit puts on the copies (and on the snapshots it takes).
const (
	TagJob          = "drkit:job"
	TagSourceID     = "drkit:source-id"
	TagSourceRegion = "drkit:source-region"
	// TagSourceTime is the source's creation time (RFC 3339): retention
	// ranks copies by it.
	TagSourceTime = "drkit:source-time"
	// TagTakenBy marks the snapshots an entry's create step took.
	TagTakenBy = "drkit:taken-by"
	// TagSeries is the volume a snapshot copy's source was taken of:
	// retention keeps the newest snapshots of each volume.
	TagSeries = "drkit:source-volume"
)

// State is a resource's state, the same words for images and snapshots.
type State string

// States.
const (
	StatePending   State = "pending"
	StateAvailable State = "available"
	StateFailed    State = "failed"
)

// Resource is an image or a snapshot in one region.
type Resource struct {
	Kind        Kind              `json:"kind"`
	ID          string            `json:"id"`
	Region      string            `json:"region"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	State       State             `json:"state"`
	Created     time.Time         `json:"created"`
	Tags        map[string]string `json:"tags,omitempty"`
	// Snapshots back an image.
	Snapshots []string `json:"snapshots,omitempty"`
	// Volume is the volume a snapshot was taken of.
	Volume string `json:"volume,omitempty"`
}

// Series is what retention counts within: the volume for snapshots (the
// newest N of each volume are kept), one series for images.
func (r Resource) Series() string {
	if r.Kind == KindImage {
		return ""
	}
	if v := r.Tags[TagSeries]; v != "" {
		return v
	}
	return r.Volume
}

// SourceID is the id of the resource a copy was made from: its tag, or for
// a copy not yet tagged, the id in its description.
func (r Resource) SourceID() string {
	if id := r.Tags[TagSourceID]; id != "" {
		return id
	}
	if _, rest, ok := strings.Cut(r.Description, " copy of "); ok {
		id, _, _ := strings.Cut(rest, " ")
		return id
	}
	return ""
}

// SourceTime is when a copy's source was created (its own creation time for
// a source, or a copy whose tag is missing).
func (r Resource) SourceTime() time.Time {
	if t, err := time.Parse(time.RFC3339, r.Tags[TagSourceTime]); err == nil {
		return t
	}
	return r.Created
}

// Spec is one images or volume_snapshots entry.
type Spec struct {
	Kind Kind
	// Provider is the cloud (ProviderEC2 when empty; "outscale").
	Provider     string
	Name         string
	Profile      string
	SourceRegion string
	Tags         map[string]string
	IDs          []string
	To           []string
	Keep         int
	KeepWithin   time.Duration
	Encrypted    bool
	KMSKey       string
	// VolumeTags, if set, are the tags of the volumes to snapshot (create).
	VolumeTags map[string]string
	// Job is when drd runs the entry.
	Job config.Job
}

// ImageSpec converts an images entry.
func ImageSpec(c config.ImageCopy, defaultProfile string) Spec {
	return spec(KindImage, c.MachineCopy, defaultProfile)
}

// SnapshotSpec converts a volume_snapshots entry.
func SnapshotSpec(c config.SnapshotCopy, defaultProfile string) Spec {
	s := spec(KindSnapshot, c.MachineCopy, defaultProfile)
	if c.Create != nil {
		s.VolumeTags = c.Create.VolumeTags
	}
	return s
}

func spec(k Kind, m config.MachineCopy, defaultProfile string) Spec {
	p := m.Profile
	if p == "" {
		p = defaultProfile
	}
	return Spec{Kind: k, Provider: m.Provider, Name: m.Name, Profile: p, SourceRegion: m.SourceRegion, Tags: m.Filters.Tags, IDs: m.Filters.IDs,
		To: m.To, Keep: m.Keep, KeepWithin: time.Duration(m.KeepWithin), Encrypted: m.Encrypted, KMSKey: m.KMSKey, Job: m.Job}
}

// description is what a copy of id carries from the copy call on; Copies
// finds untagged copies by its prefix.
func (s Spec) description(id string) string {
	return fmt.Sprintf("%s copy of %s from %s", s.descPrefix(), id, s.SourceRegion)
}

func (s Spec) descPrefix() string { return "drkit:" + s.Name }

// Sources lists the entry's source resources in its source region, newest
// first: those matching the filters, and the snapshots it took.
func Sources(ctx context.Context, api Cloud, s Spec) ([]Resource, error) {
	var out []Resource
	if len(s.Tags) > 0 || len(s.IDs) > 0 {
		rs, err := api.List(ctx, s.Kind, Query{Tags: s.Tags, IDs: s.IDs})
		if err != nil {
			return nil, err
		}
		out = rs
	}
	if s.Kind == KindSnapshot && len(s.VolumeTags) > 0 {
		taken, err := api.List(ctx, s.Kind, Query{Tags: map[string]string{TagTakenBy: s.Name}})
		if err != nil {
			return nil, err
		}
		for _, r := range taken {
			if !slices.ContainsFunc(out, func(o Resource) bool { return o.ID == r.ID }) {
				out = append(out, r)
			}
		}
	}
	sortNewest(out, Resource.SourceTime)
	return out, nil
}

// Copies lists the entry's copies in region: tagged with its name, or
// untagged with its description (a run that stopped before tagging).
func Copies(ctx context.Context, api Cloud, s Spec, region string) ([]Resource, error) {
	tagged, err := api.List(ctx, s.Kind, Query{Tags: map[string]string{TagJob: s.Name}})
	if err != nil {
		return nil, err
	}
	described, err := api.List(ctx, s.Kind, Query{DescPrefix: s.descPrefix() + " copy of "})
	if err != nil {
		return nil, err
	}
	for _, r := range described {
		if !slices.ContainsFunc(tagged, func(o Resource) bool { return o.ID == r.ID }) {
			tagged = append(tagged, r)
		}
	}
	sortNewest(tagged, Resource.SourceTime)
	return tagged, nil
}

func sortNewest(rs []Resource, at func(Resource) time.Time) {
	slices.SortStableFunc(rs, func(a, b Resource) int {
		if c := at(b).Compare(at(a)); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
}

func tagFilters(tags map[string]string) []types.Filter {
	var fs []types.Filter
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		fs = append(fs, types.Filter{Name: aws.String("tag:" + k), Values: []string{tags[k]}})
	}
	return fs
}

// list returns the caller's own images or snapshots in region that pass
// filters (and have one of ids, if given).
func list(ctx context.Context, api API, k Kind, region string, filters []types.Filter, ids []string) ([]Resource, error) {
	if k == KindImage {
		return listImages(ctx, api, region, filters, ids)
	}
	return listSnapshots(ctx, api, region, filters, ids)
}

func listImages(ctx context.Context, api API, region string, filters []types.Filter, ids []string) ([]Resource, error) {
	var out []Resource
	in := &awsec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filters, ImageIds: ids}
	if len(ids) == 0 { // EC2 refuses MaxResults with ids
		in.MaxResults = aws.Int32(500)
	}
	p := awsec2.NewDescribeImagesPaginator(api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe images in %s: %w", region, err)
		}
		for _, im := range page.Images {
			out = append(out, imageResource(im, region))
		}
	}
	return out, nil
}

func listSnapshots(ctx context.Context, api API, region string, filters []types.Filter, ids []string) ([]Resource, error) {
	var out []Resource
	in := &awsec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: filters, SnapshotIds: ids}
	if len(ids) == 0 { // EC2 refuses MaxResults with ids
		in.MaxResults = aws.Int32(1000)
	}
	p := awsec2.NewDescribeSnapshotsPaginator(api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe snapshots in %s: %w", region, err)
		}
		for _, sn := range page.Snapshots {
			out = append(out, snapshotResource(sn, region))
		}
	}
	return out, nil
}

func imageResource(im types.Image, region string) Resource {
	r := Resource{Kind: KindImage, ID: aws.ToString(im.ImageId), Region: region, Name: aws.ToString(im.Name),
		Description: aws.ToString(im.Description), Tags: tagMap(im.Tags)}
	r.Created, _ = time.Parse(time.RFC3339, aws.ToString(im.CreationDate))
	switch im.State {
	case types.ImageStateAvailable:
		r.State = StateAvailable
	case types.ImageStatePending, types.ImageStateTransient:
		r.State = StatePending
	default: // failed, error, invalid, deregistered, disabled
		r.State = StateFailed
	}
	for _, bd := range im.BlockDeviceMappings {
		if bd.Ebs != nil && bd.Ebs.SnapshotId != nil {
			r.Snapshots = append(r.Snapshots, *bd.Ebs.SnapshotId)
		}
	}
	return r
}

func snapshotResource(sn types.Snapshot, region string) Resource {
	r := Resource{Kind: KindSnapshot, ID: aws.ToString(sn.SnapshotId), Region: region, Description: aws.ToString(sn.Description),
		Created: aws.ToTime(sn.StartTime), Tags: tagMap(sn.Tags), Volume: aws.ToString(sn.VolumeId)}
	r.Name = r.Tags["Name"]
	switch sn.State {
	case types.SnapshotStateCompleted:
		r.State = StateAvailable
	case types.SnapshotStatePending, types.SnapshotStateRecovering:
		r.State = StatePending
	default: // error, recoverable
		r.State = StateFailed
	}
	return r
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}
