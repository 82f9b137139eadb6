package ec2

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// sdkCloud is the EC2 Cloud of one region, on aws-sdk-go-v2.
type sdkCloud struct {
	api    API
	region string
}

var _ Cloud = sdkCloud{}

func (c sdkCloud) List(ctx context.Context, k Kind, q Query) ([]Resource, error) {
	filters := tagFilters(q.Tags)
	if q.DescPrefix != "" {
		filters = append(filters, types.Filter{Name: aws.String("description"), Values: []string{q.DescPrefix + "*"}})
	}
	if q.Pending {
		name := "status"
		if k == KindImage {
			name = "state"
		}
		filters = append(filters, types.Filter{Name: aws.String(name), Values: []string{"pending"}})
	}
	return list(ctx, c.api, k, c.region, filters, q.IDs)
}

func (c sdkCloud) Copy(ctx context.Context, s Spec, src Resource, desc string) (string, error) {
	var kms *string
	if s.KMSKey != "" {
		kms = aws.String(s.KMSKey)
	}
	if s.Kind == KindImage {
		out, err := c.api.CopyImage(ctx, &awsec2.CopyImageInput{Name: aws.String(src.Name), SourceImageId: aws.String(src.ID),
			SourceRegion: aws.String(s.SourceRegion), Description: aws.String(desc), Encrypted: aws.Bool(s.Encrypted), KmsKeyId: kms,
			// CopyImage is idempotent by client token; the description covers
			// CopySnapshot, which has none.
			ClientToken: aws.String(clientToken(s, src.ID))})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.ImageId), nil
	}
	out, err := c.api.CopySnapshot(ctx, &awsec2.CopySnapshotInput{SourceSnapshotId: aws.String(src.ID),
		SourceRegion: aws.String(s.SourceRegion), Description: aws.String(desc), Encrypted: aws.Bool(s.Encrypted), KmsKeyId: kms})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.SnapshotId), nil
}

func (c sdkCloud) AtCopyLimit(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ResourceLimitExceeded"
}

func (c sdkCloud) Tag(ctx context.Context, ids []string, tags map[string]string) error {
	var list []types.Tag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		list = append(list, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	_, err := c.api.CreateTags(ctx, &awsec2.CreateTagsInput{Resources: ids, Tags: list})
	return err
}

// Wait uses the SDK's waiters.
func (c sdkCloud) Wait(ctx context.Context, k Kind, id string, timeout, minD, maxD time.Duration) error {
	delays := func(dMin, dMax time.Duration) (time.Duration, time.Duration) {
		if minD > 0 {
			dMin = minD
		}
		if maxD > 0 {
			dMax = maxD
		}
		return dMin, max(dMin, dMax)
	}
	if k == KindImage {
		w := awsec2.NewImageAvailableWaiter(c.api, func(o *awsec2.ImageAvailableWaiterOptions) {
			o.MinDelay, o.MaxDelay = delays(o.MinDelay, o.MaxDelay)
		})
		return w.Wait(ctx, &awsec2.DescribeImagesInput{ImageIds: []string{id}}, timeout)
	}
	w := awsec2.NewSnapshotCompletedWaiter(c.api, func(o *awsec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = delays(o.MinDelay, o.MaxDelay)
	})
	return w.Wait(ctx, &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{id}}, timeout)
}

func (c sdkCloud) Deregister(ctx context.Context, id string) error {
	if _, err := c.api.DeregisterImage(ctx, &awsec2.DeregisterImageInput{ImageId: aws.String(id)}); err != nil && !notFound(err) {
		return err
	}
	return nil
}

func (c sdkCloud) DeleteSnapshot(ctx context.Context, id string) error {
	if _, err := c.api.DeleteSnapshot(ctx, &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); err != nil && !notFound(err) {
		return err
	}
	return nil
}

func (c sdkCloud) Volumes(ctx context.Context, tags map[string]string) ([]string, error) {
	var vols []string
	p := awsec2.NewDescribeVolumesPaginator(c.api, &awsec2.DescribeVolumesInput{Filters: tagFilters(tags)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe volumes in %s: %w", c.region, err)
		}
		for _, v := range page.Volumes {
			vols = append(vols, aws.ToString(v.VolumeId))
		}
	}
	return vols, nil
}

func (c sdkCloud) Snapshot(ctx context.Context, volume, desc string, tags map[string]string) (string, error) {
	var list []types.Tag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		list = append(list, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	out, err := c.api.CreateSnapshot(ctx, &awsec2.CreateSnapshotInput{VolumeId: aws.String(volume), Description: aws.String(desc),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: list}}})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.SnapshotId), nil
}
