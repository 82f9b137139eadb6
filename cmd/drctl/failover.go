package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/replication/publicip"
	"github.com/drkit/drkit/snapshots/ec2"
	"github.com/drkit/drkit/snapshots/outscale"
)

var (
	mysqlPort = regexp.MustCompile(`@tcp\([^:)]+:(\d+)\)`)
	kvPort    = regexp.MustCompile(`(?:^|\s)port=(\d+)`)
)

// dsnPort is the port a DSN of any form names (0 when it names none).
func dsnPort(dsn string) int {
	if u, err := url.Parse(dsn); err == nil && u.Port() != "" {
		n, _ := strconv.Atoi(u.Port())
		return n
	}
	for _, re := range []*regexp.Regexp{mysqlPort, kvPort} {
		if m := re.FindStringSubmatch(dsn); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	return 0
}

// ipMove resolves the public-IP move of a promotion of rep from the flags
// and the cluster's failover: block, and builds its mover, before anything
// is promoted; nil when no move is asked for.
func ipMove(g *globals, cfg *config.Config, cl config.Cluster, rep config.Replica, f promoteFlags) (func(context.Context) (string, error), error) {
	var fo config.Failover
	if cl.Failover != nil {
		fo = *cl.Failover
	}
	ip, vm := f.publicIP, f.toVM
	if ip == "" && vm == "" && fo.VMs[rep.Name] == "" {
		if cl.Failover != nil {
			fmt.Fprintf(g.stderr, "drctl: warning: failover.vms of cluster %s names no stand-by VM for replica %s: the public IP %s is not moved\n", cl.Name, rep.Name, fo.PublicIP)
		}
		return nil, nil // no move asked for this replica
	}
	if ip == "" {
		ip = fo.PublicIP
	}
	if vm == "" {
		vm = fo.VMs[rep.Name]
	}
	if ip == "" || vm == "" {
		return nil, usageErr(fmt.Errorf("--public-ip and --to-vm go together (failover: of cluster %s gives %q and %q for replica %s)", cl.Name, fo.PublicIP, fo.VMs[rep.Name], rep.Name))
	}
	provider, region, port, wait := first(f.ipProvider, fo.Provider, "outscale"), first(f.ipRegion, fo.Region), f.ipPort, time.Duration(fo.Wait)
	if port == 0 {
		port = fo.Port
	}
	if port == 0 {
		port = dsnPort(rep.DSN)
	}
	if wait == 0 {
		wait = 2 * time.Minute
	}
	switch {
	case region == "":
		return nil, usageErr(errors.New("--ip-region (or failover.region) is required: the cloud Region of the public IP and the VM"))
	case port == 0:
		return nil, usageErr(fmt.Errorf("replica %s's dsn names no port: give --ip-port (or failover.port), where the moved IP must answer", rep.Name))
	}
	var m publicip.Mover
	switch provider {
	case "outscale":
		oc, err := outscale.NewClients(cfg, g.log())
		if err != nil {
			return nil, err
		}
		m = oc.PublicIPs(region)
	case "ec2":
		pm, err := (&ec2.SDKClients{Endpoints: cfg.EC2.Endpoints}).PublicIPs(context.Background(), cfg.EC2.Profile, region)
		if err != nil {
			return nil, err
		}
		m = pm
	default:
		return nil, usageErr(fmt.Errorf("--ip-provider %q: outscale or ec2", provider))
	}
	return func(ctx context.Context) (string, error) {
		res, err := publicip.Move(ctx, m, ip, vm, port, wait)
		if err != nil {
			return "", err
		}
		return res.String(), nil
	}, nil
}

// first is the first non-empty string.
func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
