package ec2

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/drkit/drkit/replication/publicip"
)

// PublicIPs moves Elastic IPs between instances of one region
// (publicip.Mover): AssociateAddress with AllowReassociation.
type PublicIPs struct {
	API    API
	Region string
}

var _ publicip.Mover = PublicIPs{}

// PublicIPs returns the Elastic IP mover of region.
func (c *SDKClients) PublicIPs(ctx context.Context, profile, region string) (PublicIPs, error) {
	api, err := c.api(ctx, profile, region)
	return PublicIPs{API: api, Region: region}, err
}

func (p PublicIPs) address(ctx context.Context, ip string) (string, string, error) {
	out, err := p.API.DescribeAddresses(ctx, &awsec2.DescribeAddressesInput{PublicIps: []string{ip}})
	if err != nil {
		return "", "", fmt.Errorf("describe address %s in %s: %w", ip, p.Region, err)
	}
	if len(out.Addresses) != 1 {
		return "", "", fmt.Errorf("the Elastic IP %s is not the account's in %s (allocate it there, or name another region)", ip, p.Region)
	}
	a := out.Addresses[0]
	return aws.ToString(a.AllocationId), aws.ToString(a.InstanceId), nil
}

// LinkedTo implements publicip.Mover.
func (p PublicIPs) LinkedTo(ctx context.Context, ip string) (string, error) {
	_, inst, err := p.address(ctx, ip)
	return inst, err
}

// Link implements publicip.Mover: AssociateAddress by allocation id (VPC
// addresses), with AllowReassociation.
func (p PublicIPs) Link(ctx context.Context, ip, vm string) error {
	alloc, _, err := p.address(ctx, ip)
	if err != nil {
		return err
	}
	_, err = p.API.AssociateAddress(ctx, &awsec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(vm),
		AllowReassociation: aws.Bool(true)})
	return err
}
