// Package publicip moves a public IP to a stand-by VM after a promotion:
// the "use public IPs to fail over to stand-by VMs" step of drctl promote
// --public-ip IP --to-vm VM (or a cluster's failover: block). A provider
// (OUTSCALE's LinkPublicIp with AllowRelink, AWS's AssociateAddress with
// AllowReassociation) implements Mover; Move links, reads the link back,
// and waits until the IP answers on the database's port.
//
// Imports nothing of drkit's.
package publicip

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Mover links public IPs to VMs in one region.
type Mover interface {
	// LinkedTo returns the VM ip is linked to ("" none).
	LinkedTo(ctx context.Context, ip string) (string, error)
	// Link links ip to vm, taking it from any VM it is linked to.
	Link(ctx context.Context, ip, vm string) error
}

// Result is one move.
type Result struct {
	IP string `json:"ip"`
	VM string `json:"vm"`
	// Previous is the VM the IP was linked to before ("" none).
	Previous string `json:"previous,omitempty"`
	// Answered is how long after the link the IP answered on the port.
	Answered time.Duration `json:"answered_after"`
}

// String is the line drctl prints and the promotion record keeps.
func (r Result) String() string {
	from := "unlinked"
	if r.Previous != "" {
		from = "from " + r.Previous
	}
	return fmt.Sprintf("public IP %s moved to %s (%s), answering after %s", r.IP, r.VM, from, r.Answered.Round(time.Millisecond))
}

// Move links ip to vm, checks that the link reads back, and waits up to
// wait for ip:port to accept a TCP connection.
func Move(ctx context.Context, m Mover, ip, vm string, port int, wait time.Duration) (Result, error) {
	res := Result{IP: ip, VM: vm}
	if net.ParseIP(ip) == nil {
		return res, fmt.Errorf("public IP %q is not an IP address", ip)
	}
	prev, err := m.LinkedTo(ctx, ip)
	if err != nil {
		return res, fmt.Errorf("read public IP %s: %w", ip, err)
	}
	res.Previous = prev
	if err := m.Link(ctx, ip, vm); err != nil {
		return res, fmt.Errorf("link public IP %s to %s: %w", ip, vm, err)
	}
	now, err := m.LinkedTo(ctx, ip)
	if err != nil {
		return res, fmt.Errorf("read public IP %s back: %w", ip, err)
	}
	if now != vm {
		return res, fmt.Errorf("public IP %s is linked to %q after the link to %s", ip, now, vm)
	}
	t0 := time.Now()
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			res.Answered = time.Since(t0)
			return res, nil
		}
		if time.Since(t0) > wait {
			return res, fmt.Errorf("public IP %s is linked to %s but %s does not answer after %s: %w", ip, vm, addr, wait, err)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
