package outscale

import (
	"context"
	"fmt"
	"net/http"

	osc "github.com/outscale/osc-sdk-go/v2"

	"github.com/drkit/drkit/replication/publicip"
)

// PublicIPs moves OUTSCALE public IPs between VMs of one Region
// (publicip.Mover).
type PublicIPs struct{ *Client }

var _ publicip.Mover = PublicIPs{}

// LinkedTo implements publicip.Mover (ReadPublicIps).
func (p PublicIPs) LinkedTo(ctx context.Context, ip string) (string, error) {
	req := osc.ReadPublicIpsRequest{Filters: &osc.FiltersPublicIp{PublicIps: &[]string{ip}}}
	resp, err := call(ctx, p.Client, "ReadPublicIps", func(ctx context.Context) (osc.ReadPublicIpsResponse, *http.Response, error) {
		return p.api.PublicIpApi.ReadPublicIps(ctx).ReadPublicIpsRequest(req).Execute()
	})
	if err != nil {
		return "", err
	}
	list := resp.GetPublicIps()
	if len(list) != 1 {
		return "", fmt.Errorf("public IP %s is not the account's in %s (allocate it there, or name another Region)", ip, p.Region)
	}
	return list[0].GetVmId(), nil
}

// Link implements publicip.Mover: LinkPublicIp with AllowRelink.
func (p PublicIPs) Link(ctx context.Context, ip, vm string) error {
	relink := true
	req := osc.LinkPublicIpRequest{PublicIp: &ip, VmId: &vm, AllowRelink: &relink}
	_, err := call(ctx, p.Client, "LinkPublicIp", func(ctx context.Context) (osc.LinkPublicIpResponse, *http.Response, error) {
		return p.api.PublicIpApi.LinkPublicIp(ctx).LinkPublicIpRequest(req).Execute()
	})
	return err
}
