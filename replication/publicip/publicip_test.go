package publicip_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/replication/publicip"
	"github.com/drkit/drkit/snapshots/outscale"
	"github.com/drkit/drkit/snapshots/outscale/fakeoapi"
)

// Move on OUTSCALE (FAKE OAPI): the IP linked to the old VM is relinked to
// the stand-by, read back, and answers on the port (127.0.0.1 stands in for
// the public IP: a real one cannot be moved here).
func TestMoveOnOutscale(t *testing.T) {
	cloud := fakeoapi.NewCloud("AK")
	defer cloud.Close()
	r := cloud.AddRegion("eu-west-2", fakeoapi.OOS{})
	old, standby := cloud.AddVM("eu-west-2"), cloud.AddVM("eu-west-2")
	cloud.AddPublicIP("eu-west-2", "127.0.0.1", old)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	m := outscale.PublicIPs{Client: outscale.NewClient("eu-west-2", r.Endpoint(), "AK", "SK", nil, nil)}
	res, err := publicip.Move(context.Background(), m, "127.0.0.1", standby, ln.Addr().(*net.TCPAddr).Port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Previous != old || cloud.PublicIP("eu-west-2", "127.0.0.1") != standby || !strings.Contains(res.String(), "moved to "+standby+" (from "+old+")") {
		t.Fatalf("move: %+v (%s); the IP is linked to %s", res, res, cloud.PublicIP("eu-west-2", "127.0.0.1"))
	}

	// Nothing answers on the port: linked, but an error says so.
	ln.Close()
	_, err = publicip.Move(context.Background(), m, "127.0.0.1", old, ln.Addr().(*net.TCPAddr).Port, time.Second)
	if err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("move to a VM that does not answer: %v", err)
	}
	// An IP the account does not hold in the Region.
	if _, err := publicip.Move(context.Background(), m, "192.0.2.9", old, 1, time.Second); err == nil || !strings.Contains(err.Error(), "not the account's in eu-west-2") {
		t.Fatalf("move of an unknown IP: %v", err)
	}
}
