package publicip_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/drkit/drkit/internal/testenv/ec2fake"
	"github.com/drkit/drkit/internal/testenv/oapifake"
	"github.com/drkit/drkit/replication/publicip"
	"github.com/drkit/drkit/snapshots/ec2"
	"github.com/drkit/drkit/snapshots/outscale"
)

// Move on OUTSCALE (FAKE OAPI): the IP linked to the old VM is relinked to
// the stand-by, read back, and answers on the port (127.0.0.1 stands in for
// the public IP: a real one cannot be moved here).
func TestMoveOnOutscale(t *testing.T) {
	cloud := oapifake.NewCloud("AK")
	defer cloud.Close()
	r := cloud.AddRegion("eu-west-2", oapifake.OOS{})
	old, standby := cloud.AddVM("eu-west-2"), cloud.AddVM("eu-west-2")
	cloud.AddPublicIP("eu-west-2", "127.0.0.1", old)
	ln := answering(t)
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

// Move on AWS (FAKE EC2 API, the real SDK): the Elastic IP is reassociated
// with the stand-by instance and answers.
func TestMoveOnEC2(t *testing.T) {
	f := ec2fake.Start(t, time.Millisecond)
	old, standby := f.AddInstance("eu-west-1"), f.AddInstance("eu-west-1")
	f.AddAddress("eu-west-1", "127.0.0.1", old)
	ln := answering(t)
	m, err := (&ec2.SDKClients{Options: []func(*awsec2.Options){f.Options()}}).PublicIPs(context.Background(), "", "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := publicip.Move(context.Background(), m, "127.0.0.1", standby, ln.Addr().(*net.TCPAddr).Port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Previous != old || f.AddressOf("eu-west-1", "127.0.0.1") != standby {
		t.Fatalf("move: %+v; the address is associated with %s", res, f.AddressOf("eu-west-1", "127.0.0.1"))
	}
	if _, err := publicip.Move(context.Background(), m, "127.0.0.1", "i-nope", 1, time.Second); err == nil || !strings.Contains(err.Error(), "InvalidInstanceID.NotFound") {
		t.Fatalf("move to an unknown instance: %v", err)
	}
}

// answering listens on 127.0.0.1 (the stand-in for the public IP) and
// accepts every connection until closed.
func answering(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}
