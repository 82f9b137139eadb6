// Package route53 switches a DNS name to a promoted primary: the "switch your
// traffic" step of `drctl promote --dns-zone ... --dns-name ...`. It UPSERTs
// one record (CNAME for a host name, A or AAAA for an address) with a short
// TTL through aws-sdk-go-v2's Route 53 client and waits until Route 53 says
// the change is INSYNC on its name servers. Only this one call needed
// wrapping; no library does it for us with this small surface.
//
// Imports nothing of drkit's.
package route53

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awsr53 "github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"
)

// API is the part of *route53.Client a Switcher calls.
type API interface {
	ChangeResourceRecordSets(ctx context.Context, in *awsr53.ChangeResourceRecordSetsInput, opts ...func(*awsr53.Options)) (*awsr53.ChangeResourceRecordSetsOutput, error)
	GetChange(ctx context.Context, in *awsr53.GetChangeInput, opts ...func(*awsr53.Options)) (*awsr53.GetChangeOutput, error)
}

var _ API = (*awsr53.Client)(nil)

// NewClient returns a Route 53 client from the SDK's usual credential chain;
// profile and endpoint may be "" (AWS's endpoint).
func NewClient(ctx context.Context, profile, endpoint string, opts ...func(*awsr53.Options)) (*awsr53.Client, error) {
	load := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion("us-east-1")} // Route 53 is global; its API lives in us-east-1
	if profile != "" {
		load = append(load, awsconfig.WithSharedConfigProfile(profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("AWS config (profile %q): %w", profile, err)
	}
	if endpoint != "" {
		opts = append(opts, func(o *awsr53.Options) { o.BaseEndpoint = aws.String(endpoint) })
	}
	return awsr53.NewFromConfig(cfg, opts...), nil
}

// Switch points a DNS name at a new primary.
type Switch struct {
	API  API
	Zone string // hosted zone id (Z0123..., with or without /hostedzone/)
	Name string // the record's name (db.example.com)
	// Value is a host name (CNAME) or an IP address (A/AAAA).
	Value string
	TTL   int64 // default 60
	// Wait bounds the wait for INSYNC (default 2m).
	Wait time.Duration
	// Comment is recorded with the change.
	Comment string
}

// Run makes the change and waits for it; it returns what it did.
func (s Switch) Run(ctx context.Context) (string, error) {
	if s.TTL <= 0 {
		s.TTL = 60
	}
	if s.Wait <= 0 {
		s.Wait = 2 * time.Minute
	}
	typ := types.RRTypeCname
	if ip := net.ParseIP(s.Value); ip != nil {
		typ = types.RRTypeA
		if ip.To4() == nil {
			typ = types.RRTypeAaaa
		}
	}
	out, err := s.API.ChangeResourceRecordSets(ctx, &awsr53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(s.Zone),
		ChangeBatch: &types.ChangeBatch{Comment: aws.String(s.Comment), Changes: []types.Change{{
			Action: types.ChangeActionUpsert,
			ResourceRecordSet: &types.ResourceRecordSet{Name: aws.String(s.Name), Type: typ, TTL: aws.Int64(s.TTL),
				ResourceRecords: []types.ResourceRecord{{Value: aws.String(s.Value)}}},
		}}},
	})
	if err != nil {
		return "", fmt.Errorf("route 53: UPSERT %s %s %s in zone %s: %w", s.Name, typ, s.Value, s.Zone, explain(err))
	}
	id := aws.ToString(out.ChangeInfo.Id)
	w := awsr53.NewResourceRecordSetsChangedWaiter(s.API, func(o *awsr53.ResourceRecordSetsChangedWaiterOptions) {
		o.MinDelay, o.MaxDelay = time.Second, 10*time.Second
	})
	if err := w.Wait(ctx, &awsr53.GetChangeInput{Id: out.ChangeInfo.Id}, s.Wait); err != nil {
		return "", fmt.Errorf("route 53: change %s (%s -> %s) not in sync after %s: %w", id, s.Name, s.Value, s.Wait, explain(err))
	}
	return fmt.Sprintf("%s %s -> %s (TTL %ds) in zone %s, change %s in sync", s.Name, typ, s.Value, s.TTL, strings.TrimPrefix(s.Zone, "/hostedzone/"), id), nil
}

// explain adds what to do for the errors an operator can fix.
func explain(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchHostedZone":
			return fmt.Errorf("%w (check --dns-zone: the hosted zone id, not its name)", err)
		case "InvalidChangeBatch":
			return fmt.Errorf("%w (is --dns-name inside the zone, and not a record of another type?)", err)
		case "AccessDenied":
			return fmt.Errorf("%w (the credentials need route53:ChangeResourceRecordSets and route53:GetChange)", err)
		}
	}
	return err
}
