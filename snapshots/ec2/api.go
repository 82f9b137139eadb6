package ec2

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
)

// API is the part of the EC2 API drkit calls; *awsec2.Client implements it.
type API interface {
	DescribeImages(context.Context, *awsec2.DescribeImagesInput, ...func(*awsec2.Options)) (*awsec2.DescribeImagesOutput, error)
	DescribeSnapshots(context.Context, *awsec2.DescribeSnapshotsInput, ...func(*awsec2.Options)) (*awsec2.DescribeSnapshotsOutput, error)
	DescribeVolumes(context.Context, *awsec2.DescribeVolumesInput, ...func(*awsec2.Options)) (*awsec2.DescribeVolumesOutput, error)
	CopyImage(context.Context, *awsec2.CopyImageInput, ...func(*awsec2.Options)) (*awsec2.CopyImageOutput, error)
	CopySnapshot(context.Context, *awsec2.CopySnapshotInput, ...func(*awsec2.Options)) (*awsec2.CopySnapshotOutput, error)
	CreateSnapshot(context.Context, *awsec2.CreateSnapshotInput, ...func(*awsec2.Options)) (*awsec2.CreateSnapshotOutput, error)
	CreateTags(context.Context, *awsec2.CreateTagsInput, ...func(*awsec2.Options)) (*awsec2.CreateTagsOutput, error)
	DeregisterImage(context.Context, *awsec2.DeregisterImageInput, ...func(*awsec2.Options)) (*awsec2.DeregisterImageOutput, error)
	DeleteSnapshot(context.Context, *awsec2.DeleteSnapshotInput, ...func(*awsec2.Options)) (*awsec2.DeleteSnapshotOutput, error)
	DescribeAddresses(context.Context, *awsec2.DescribeAddressesInput, ...func(*awsec2.Options)) (*awsec2.DescribeAddressesOutput, error)
	AssociateAddress(context.Context, *awsec2.AssociateAddressInput, ...func(*awsec2.Options)) (*awsec2.AssociateAddressOutput, error)
}

// SDKClients makes aws-sdk-go-v2 clients, one per profile and region, with
// the configured endpoint of each region (EC2-compatible clouds).
type SDKClients struct {
	// Endpoints maps a region to its API URL; others use AWS's.
	Endpoints map[string]string
	// Options are applied to every client (tests shorten the retry backoff).
	Options []func(*awsec2.Options)

	mu      sync.Mutex
	clients map[[2]string]API
}

// Client implements Clients.
func (c *SDKClients) Client(ctx context.Context, profile, region string) (Cloud, error) {
	api, err := c.api(ctx, profile, region)
	if err != nil {
		return nil, err
	}
	return sdkCloud{api: api, region: region}, nil
}

func (c *SDKClients) api(ctx context.Context, profile, region string) (API, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := [2]string{profile, region}
	if api, ok := c.clients[key]; ok {
		return api, nil
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS config for region %s (profile %q): %w", region, profile, err)
	}
	clientOpts := append([]func(*awsec2.Options){}, c.Options...)
	if ep := c.Endpoints[region]; ep != "" {
		clientOpts = append(clientOpts, func(o *awsec2.Options) { o.BaseEndpoint = aws.String(ep) })
	}
	api := awsec2.NewFromConfig(cfg, clientOpts...)
	if c.clients == nil {
		c.clients = map[[2]string]API{}
	}
	c.clients[key] = api
	return api, nil
}
