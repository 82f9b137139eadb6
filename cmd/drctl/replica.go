package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/replication"
	replall "github.com/drkit/drkit/replication/all"
	"github.com/drkit/drkit/replication/route53"
	"github.com/drkit/drkit/storage"
)

// catalogFor opens the cluster's ship_to regions that answer (during a
// disaster some do not) as the replication catalog; region names the one
// that must open.
func catalogFor(ctx context.Context, g *globals, cfg *config.Config, cl config.Cluster, region string) (*replication.Catalog, *storage.Region, error) {
	cat := &replication.Catalog{Cluster: cl.Name, Log: g.log()}
	names := cl.ShipTo
	if region != "" && !slices.Contains(names, region) {
		names = append([]string{region}, names...)
	}
	var must *storage.Region
	for _, name := range names {
		r, err := regions.Open(ctx, cfg, name, storage.RegionOptions{WithIdentity: true})
		if err != nil {
			if name == region {
				return nil, nil, err
			}
			g.log().Warn("region not reachable; the replication catalog is read and written without it", "region", name, "err", err)
			continue
		}
		if name == region {
			must = r
		}
		cat.Regions = append(cat.Regions, r)
	}
	if len(cat.Regions) == 0 {
		return nil, nil, fmt.Errorf("no region of cluster %s could be opened", cl.Name)
	}
	return cat, must, nil
}

// resolveView resolves --cluster and reads who its primary and replicas
// are now (the config merged with the catalog).
func (cf *clusterFlags) resolveView(ctx context.Context) (config.Cluster, replication.View, error) {
	cfg, cl, err := cf.resolve()
	if err != nil {
		return cl, replication.View{}, err
	}
	cat, _, err := catalogFor(ctx, cf.g, cfg, cl, "")
	if err != nil {
		return cl, replication.View{}, err
	}
	v, err := cat.View(ctx, cl)
	return cl, v, err
}

func newReplicaCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replica",
		Short: "Set up, list and check cross-region replicas",
	}
	cmd.AddCommand(newReplicaCreateCmd(g), newReplicaListCmd(g), newReplicaCheckCmd(g))
	return cmd
}

type replicaCreateFlags struct {
	name, dsn, passwordFile string
	// engineFlags are the engine-specific flags given (engineReplicaFlags).
	engineFlags map[string]string
}

// engineReplicaFlags are replica create's flags that only some engines take.
var engineReplicaFlags = []string{"data-dir", "from-store", "force", "replay-listen"}

func newReplicaCreateCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var f replicaCreateFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Make a replica of the cluster's primary in a region, from that region's store",
		Long: `create sets up a replica in --region and registers it in the cluster's
catalog in every region, so drd watches it and drctl promote finds it.

PostgreSQL: the newest base backup in the region's store is unpacked into
--data-dir (new or empty; it gets its parent's owner, which PostgreSQL runs
as) and started on --dsn's port as a standby that replays the region's WAL
(drctl wal-fetch), then streams from the primary through a slot of its own.
--from-store makes a standby that never connects to the primary.

MySQL/MariaDB: the region's newest snapshot and binlog are loaded into the
empty server --dsn, which then replicates from the primary with GTID
(CHANGE MASTER ... MASTER_USE_GTID=slave_pos) and is made read_only.

Redis: the empty server --dsn replicates from the primary (REPLICAOF, with
the cluster's password), after a check that the primary's backlog and
replica output buffer can carry its writes across regions (--force skips it).

Running create again for the same replica only makes sure it runs. Every
refusal (target not empty, wrong credentials, primary unreachable) comes
before anything is changed.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			if cf.region == "" || f.dsn == "" {
				return usageErr(errors.New("--region and --dsn are required"))
			}
			if _, ok := cfg.Region(cf.region); !ok {
				return usageErr(fmt.Errorf("region %q is not configured in %s; configured: %s", cf.region, cfg.Path, regionNames(cfg.Regions)))
			}
			rc, err := capable[engine.ReplicaCreator](cl, "create replicas")
			if err != nil {
				return err
			}
			f.engineFlags = map[string]string{}
			cmd.Flags().Visit(func(fl *pflag.Flag) {
				if slices.Contains(engineReplicaFlags, fl.Name) {
					f.engineFlags[fl.Name] = fl.Value.String()
				}
			})
			if f.name == "" {
				f.name = cf.region
			}
			if err := replication.CheckName(f.name); err != nil {
				return usageErr(err)
			}
			cat, region, err := catalogFor(cmd.Context(), g, cfg, cl, cf.region)
			if err != nil {
				return err
			}
			res, err := createReplica(cmd.Context(), g, cfg, cl, rc, cat, region, f)
			if err != nil {
				return engineErr(err)
			}
			if g.json {
				return g.printJSON(res)
			}
			fmt.Fprintf(g.stdout, "replica %s of %s in region %s is %s\n", f.name, cl.Name, cf.region, replication.RecordReady)
			return nil
		},
	}
	cf.addFlags(cmd, "the replica's region: its store is read (required)")
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "the replica's name (default: the region's)")
	fl.StringVar(&f.dsn, "dsn", "", "how to reach the replica server (required; PostgreSQL: it runs on this port)"+fmt.Sprintf(passwordHelp, "--password-file", "PGPASSWORD, $MYSQL_PWD or $REDISCLI_AUTH"))
	fl.StringVar(&f.passwordFile, "password-file", "", "a file holding --dsn's password")
	fl.String("data-dir", "", "PostgreSQL: the replica's new data folder")
	fl.Bool("from-store", false, "PostgreSQL: replay WAL from the region's store only, never connecting to the primary")
	fl.Bool("force", false, "Redis: create even when the primary's backlog or buffers look too small")
	fl.String("replay-listen", "", "MySQL: address the replica connects back to for the binlog replay")
	return cmd
}

func createReplica(ctx context.Context, g *globals, cfg *config.Config, cl config.Cluster, rc engine.ReplicaCreator, cat *replication.Catalog, region *storage.Region, f replicaCreateFlags) (any, error) {
	var err error
	if f.dsn, err = withPassword(cl.Engine, f.dsn, f.passwordFile); err != nil {
		return nil, err
	}
	if !cl.TrustsHost(f.dsn) {
		fmt.Fprintf(g.stderr, "drctl: warning: drd will not watch or follow replica %s on host %s until that host is in cluster %s's hosts (or its TLS is as strict as the cluster's dsn): a store cannot point drd at hosts the config does not name\n",
			f.name, config.DSNHost(f.dsn), cl.Name)
	}
	env := engine.Env{Config: cfg, Cluster: cl, Log: g.log()}
	progress, finish := g.countBar("base backup", true)
	defer finish()
	env.Progress = progress
	return rc.CreateReplica(ctx, env, engine.ReplicaRequest{Name: f.name, Region: region, DSN: f.dsn, Catalog: cat, Flags: f.engineFlags})
}

// replicaRow is one line of drctl replica list.
type replicaRow struct {
	Name   string `json:"name"`
	Region string `json:"region"`
	DSN    string `json:"dsn"`
	Source string `json:"source"` // config or catalog
	Mode   string `json:"mode,omitempty"`
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

func newReplicaListCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the cluster's replicas: the config's and the catalog's",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, v, err := cf.resolveView(cmd.Context())
			if err != nil {
				return err
			}
			var rows []replicaRow
			for _, r := range v.Replicas {
				row := replicaRow{Name: r.Name, Region: r.Region, DSN: config.RedactDSN(r.DSN), Source: "config"}
				if rec, ok := v.Records[r.Name]; ok {
					row.Source, row.Mode, row.Status, row.Error = "catalog", rec.Mode, rec.Status, rec.Error
				}
				rows = append(rows, row)
			}
			if g.json {
				return printList(g, rows)
			}
			fmt.Fprintf(g.stdout, "primary: %s (region %s)\n", config.RedactDSN(v.PrimaryDSN), v.PrimaryRegion)
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREGION\tSOURCE\tMODE\tSTATUS\tDSN")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Region, r.Source, r.Mode, r.Status, r.DSN)
			}
			return tw.Flush()
		},
	}
	cf.addFlags(cmd, "")
	return cmd
}

func newReplicaCheckCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var only string
	var chunkRows int
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Compare every table of the primary and its replicas, chunk by chunk",
		Long: `check cuts every table into primary-key ranges of --chunk-rows rows and
compares each range's checksum on the primary and on each replica at the
same log position: the replica is waited for until it has replayed the
primary's position first. A range that changes meanwhile is compared again.
It prints the tables and key ranges that differ and exits 1 when any does.
PostgreSQL compares every database (tables outside the DSN's database are
named database.schema.table). Redis compares every
database's keys (value, type and expiry), sorted by name, as tables dbN.keys;
keys created after the check started are left for the next check.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, v, err := cf.resolveView(cmd.Context())
			if err != nil {
				return err
			}
			reports, err := checkReplicas(cmd.Context(), g, cl, v, only, chunkRows, wait)
			if g.json {
				if jerr := printList(g, reports); jerr != nil {
					return jerr
				}
			} else {
				printChecks(g, reports)
			}
			if err != nil {
				return err
			}
			for _, r := range reports {
				if !r.InSync() {
					return &exitError{code: exitFailure, err: fmt.Errorf("replica %s differs from the primary in %v", r.Replica, r.DriftTables())}
				}
			}
			return nil
		},
	}
	cf.addFlags(cmd, "")
	cmd.Flags().StringVar(&only, "replica", "", "check only this replica (default: all)")
	cmd.Flags().IntVar(&chunkRows, "chunk-rows", 1000, "rows per compared chunk")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for a replica to reach the primary's position")
	return cmd
}

// checkReplicas runs the checksum comparison against each replica.
func checkReplicas(ctx context.Context, g *globals, cl config.Cluster, v replication.View, only string, chunkRows int, wait time.Duration) ([]replication.Report, error) {
	var reports []replication.Report
	found := false
	for _, r := range v.Replicas {
		if only != "" && r.Name != only {
			continue
		}
		found = true
		rep, err := replall.Check(ctx, cl, v.PrimaryDSN, r, chunkRows, wait, g.log())
		if err != nil {
			return reports, fmt.Errorf("replica %s: %w", r.Name, err)
		}
		reports = append(reports, rep)
	}
	if only != "" && !found {
		return nil, &exitError{code: exitNotFound, err: fmt.Errorf("cluster %s has no replica %q (drctl replica list shows them)", cl.Name, only)}
	}
	return reports, nil
}

func printChecks(g *globals, reports []replication.Report) {
	for _, r := range reports {
		verdict := "in sync"
		if !r.InSync() {
			verdict = fmt.Sprintf("DRIFT in %d range(s)", len(r.Diffs))
		}
		fmt.Fprintf(g.stdout, "replica %s: %s (%d tables, %d chunks, %d rows, %s)\n", r.Replica, verdict, r.Tables, r.Chunks, r.Rows,
			r.Finished.Sub(r.Started).Round(time.Millisecond))
		for _, d := range r.Diffs {
			fmt.Fprintf(g.stdout, "  %s %s: primary %d rows, replica %d rows, contents differ\n", d.Table, d.Range(), d.PrimaryRows, d.ReplicaRows)
		}
		for _, d := range r.Unstable {
			fmt.Fprintf(g.stdout, "  %s %s: changed at every attempt, not compared\n", d.Table, d.Range())
		}
	}
}

type promoteFlags struct {
	name                                                string
	force                                               bool
	wait                                                time.Duration
	dnsZone, dnsName, dnsValue, dnsEndpoint, dnsProfile string
	dnsTTL                                              int64
	publicIP, toVM, ipProvider, ipRegion                string
	ipPort                                              int
}

func newPromoteCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var f promoteFlags
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Make the replica in a region the cluster's primary",
		Long: `promote makes the cluster's replica in --region (or --replica) its primary.

First it fences the old primary if it answers (PostgreSQL: new transactions
read-only and client sessions ended; MariaDB: read_only; Redis: writes
paused, then it becomes a replica of the new primary) and waits until the
replica has everything the old primary wrote. Then it checks that the replica
has all of the log that the region's store holds and refuses, showing the
gap, unless --force. Then it promotes (pg_promote, a new timeline; STOP SLAVE
+ RESET SLAVE ALL + read_only off; REPLICAOF NO ONE), records the promotion
in every region's catalog (drd ships from the new primary from then on) and
prints what clients must change. With --dns-zone and --dns-name it also
points that Route 53 name at the new primary and waits until it is in sync.
With --public-ip and --to-vm (or the cluster's failover: block) it then moves
the public IP to the stand-by VM (OUTSCALE LinkPublicIp with AllowRelink),
reads the link back, waits until the IP answers on the database's port, and
adds the move to the promotion record. Both happen only after a promotion
that passed the gap check (or --force).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			if cf.region == "" && f.name == "" {
				return usageErr(errors.New("--region or --replica is required"))
			}
			if (f.dnsZone == "") != (f.dnsName == "") {
				return usageErr(errors.New("--dns-zone and --dns-name go together"))
			}
			return promote(cmd.Context(), g, cfg, cl, cf.region, f)
		},
	}
	cf.addFlags(cmd, "the region whose replica becomes the primary; its store is checked")
	fl := cmd.Flags()
	fl.StringVar(&f.name, "replica", "", "the replica to promote (default: the only one in --region)")
	fl.BoolVar(&f.force, "force", false, "promote even when the replica lacks log the store holds (that log is lost)")
	fl.DurationVar(&f.wait, "wait", 30*time.Second, "how long to wait for the replica to catch up")
	fl.StringVar(&f.dnsZone, "dns-zone", "", "Route 53 hosted zone id whose --dns-name to switch")
	fl.StringVar(&f.dnsName, "dns-name", "", "the DNS name clients use (db.example.com)")
	fl.StringVar(&f.dnsValue, "dns-value", "", "what the name points at (default: the new primary's host)")
	fl.Int64Var(&f.dnsTTL, "dns-ttl", 60, "the record's TTL in seconds")
	fl.StringVar(&f.dnsEndpoint, "dns-endpoint", "", "Route 53 API endpoint (default: AWS's)")
	fl.StringVar(&f.dnsProfile, "dns-profile", "", "AWS shared-config profile for Route 53")
	fl.StringVar(&f.publicIP, "public-ip", "", "move this public IP to --to-vm after the promotion (default: the cluster's failover.public_ip)")
	fl.StringVar(&f.toVM, "to-vm", "", "the stand-by VM the public IP moves to (default: failover.vms of the promoted replica)")
	fl.StringVar(&f.ipProvider, "ip-provider", "", "outscale or ec2 (default: failover.provider, else outscale)")
	fl.StringVar(&f.ipRegion, "ip-region", "", "the cloud Region of the IP and the VM (default: failover.region)")
	fl.IntVar(&f.ipPort, "ip-port", 0, "the port the moved IP must answer on (default: the replica's dsn port)")
	return cmd
}

func promote(ctx context.Context, g *globals, cfg *config.Config, cl config.Cluster, region string, f promoteFlags) error {
	p, err := capable[engine.Promoter](cl, "promote replicas")
	if err != nil {
		return err
	}
	cat, _, err := catalogFor(ctx, g, cfg, cl, region)
	if err != nil {
		return err
	}
	v, err := cat.View(ctx, cl)
	if err != nil {
		return err
	}
	rep, err := pickReplica(cl, v, region, f.name)
	if err != nil {
		return err
	}
	if region == "" {
		region = rep.Region
	}
	var r *storage.Region
	for _, reg := range cat.Regions {
		if reg.Name == region {
			r = reg
		}
	}
	env := engine.Env{Config: cfg, Cluster: cl, Log: g.log()}
	tried := false // the engine's promotion ran: its result is worth printing even on failure
	run := replication.PromoteRun{Catalog: cat, View: v, Replica: rep, RegionName: region, Region: r, NeedsStore: p.PromoteNeedsStore(),
		Promote: func(ctx context.Context) (replication.PromoteResult, error) {
			tried = true
			return p.Promote(ctx, env, engine.PromoteRequest{PrimaryDSN: v.PrimaryDSN, Replica: rep, Region: r, Force: f.force, Wait: f.wait})
		}}
	if f.dnsZone != "" {
		run.SwitchDNS = func(ctx context.Context, dsn string) (string, error) { return switchDNS(ctx, f, dsn, cl.Name) }
	}
	if run.MoveIP, err = ipMove(g, cfg, cl, rep, f); err != nil {
		return err
	}
	res, err := run.Run(ctx)
	if err != nil {
		if g.json && tried {
			_ = g.printJSON(res)
		}
		return err
	}
	if g.json {
		return g.printJSON(res)
	}
	fmt.Fprintf(g.stdout, "promoted %s (region %s) to primary of %s at %s\n", rep.Name, rep.Region, cl.Name, res.Promotion.Position)
	fmt.Fprintf(g.stdout, "old primary: %s\n", res.FenceNote)
	if res.Gap != "" {
		fmt.Fprintf(g.stdout, "LOST (--force): %s\n", res.Gap)
	}
	if res.DNS != "" {
		fmt.Fprintf(g.stdout, "dns: %s\n", res.DNS)
	}
	if res.PublicIP != "" {
		fmt.Fprintf(g.stdout, "public ip: %s\n", res.PublicIP)
	}
	fmt.Fprintf(g.stdout, "clients: %s\n", res.ClientChange)
	fmt.Fprintf(g.stdout, "config: set clusters[%s].dsn and region to the new primary when convenient; drd already follows the recorded promotion\n", cl.Name)
	return nil
}

// pickReplica finds the replica to promote by name or region.
func pickReplica(cl config.Cluster, v replication.View, region, name string) (config.Replica, error) {
	var match []config.Replica
	for _, r := range v.Replicas {
		if (name == "" || r.Name == name) && (region == "" || r.Region == region) {
			match = append(match, r)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return config.Replica{}, &exitError{code: exitNotFound, err: fmt.Errorf("cluster %s has no replica in region %q named %q (drctl replica list shows them)", cl.Name, region, name)}
	}
	return config.Replica{}, usageErr(fmt.Errorf("cluster %s has %d replicas in region %s: pick one with --replica", cl.Name, len(match), region))
}

func switchDNS(ctx context.Context, f promoteFlags, dsn, cluster string) (string, error) {
	value := f.dnsValue
	if value == "" {
		value = dsnHost(dsn)
	}
	c, err := route53.NewClient(ctx, f.dnsProfile, f.dnsEndpoint)
	if err != nil {
		return "", err
	}
	return route53.Switch{API: c, Zone: f.dnsZone, Name: f.dnsName, Value: value, TTL: f.dnsTTL,
		Comment: "drctl promote of cluster " + cluster}.Run(ctx)
}

var (
	mysqlHost = regexp.MustCompile(`@tcp\(([^:)]+)`)
	kvHost    = regexp.MustCompile(`(?:^|\s)host=([^\s]+)`)
)

// dsnHost is the host a DSN of any form connects to.
func dsnHost(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Host != "" {
		return u.Hostname()
	}
	for _, re := range []*regexp.Regexp{mysqlHost, kvHost} {
		if m := re.FindStringSubmatch(dsn); m != nil {
			return m[1]
		}
	}
	return ""
}
