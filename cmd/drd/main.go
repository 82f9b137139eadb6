package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/drkit/drkit/api"
	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/internal/buildinfo"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/drill"
	"github.com/drkit/drkit/internal/engine"
	_ "github.com/drkit/drkit/internal/engine/all" // every engine registers itself
	"github.com/drkit/drkit/internal/lease"
	"github.com/drkit/drkit/internal/lifecycle"
	"github.com/drkit/drkit/internal/logging"
	"github.com/drkit/drkit/internal/metrics"
	drkitregions "github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/monitor"
	"github.com/drkit/drkit/replication"
	replall "github.com/drkit/drkit/replication/all"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/snapshots/ec2"
	_ "github.com/drkit/drkit/snapshots/outscale" // the outscale provider of image and snapshot copies
	"github.com/drkit/drkit/snapshots/schedule"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/all" // every store URL scheme
)

// Exit codes, as for drctl: 0 clean stop, 1 failure, 2 bad usage or config;
// 3: the cluster's shape changed and drd could not re-execute itself (its
// supervisor restarts it).
const (
	exitFailure = 1
	exitUsage   = 2
	exitRestart = 3
)

// usageError marks errors that mean "fix your flags or config".
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	code := run(os.Args[1:], os.Stderr, os.Exit)
	if code == exitRestart {
		restart()
	}
	os.Exit(code)
}

// restart re-executes drd with its arguments after a clean stop: a promotion
// recorded by drctl promote (or a changed set of replicas) is followed
// without a supervisor, which an operator may not have on the machine that
// survived. If it cannot, drd exits with exitRestart for the supervisor.
func restart() {
	exe, err := os.Executable()
	if err == nil {
		err = syscall.Exec(exe, os.Args, os.Environ())
	}
	fmt.Fprintf(os.Stderr, "drd: cannot restart itself (%v); exiting %d for its supervisor to restart it\n", err, exitRestart)
}

// run executes drd with args and returns the process exit code.
func run(args []string, stderr io.Writer, exit func(int)) int {
	cmd := newRootCmd(stderr, exit)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	var ns replication.NewShape
	if errors.As(err, &ns) {
		fmt.Fprintln(stderr, "drd: restarting:", ns)
		return exitRestart
	}
	fmt.Fprintln(stderr, "drd:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

type options struct {
	configPath string
	logLevel   string
	listen     string
}

func newRootCmd(stderr io.Writer, exit func(int)) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "drd",
		Short: "drkit's daemon: ships transaction logs and backups to every region",
		Long: `drd runs beside a database and keeps it recoverable in other regions.

Exit codes: 0 stopped cleanly, 1 failed, 2 bad flags or config.`,
		Version:       buildinfo.Get().Version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), o, stderr, exit)
		},
	}
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := cmd.Flags()
	f.StringVar(&o.configPath, "config", "", "config file (default $"+config.EnvFile+", else ./"+config.DefaultFile+")")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: "+logging.Levels)
	f.StringVar(&o.listen, "listen", "", "override drd.listen (host:port)")
	return cmd
}

// shipRegions returns the regions cl ships to.
func shipRegions(cl config.Cluster, regions []*storage.Region) []*storage.Region {
	var out []*storage.Region
	for _, r := range regions {
		if slices.Contains(cl.ShipTo, r.Name) {
			out = append(out, r)
		}
	}
	return out
}

// watcher returns the probes (and heartbeat, when the cluster has replicas)
// of a PostgreSQL, MySQL or Redis cluster.
func watcher(cl config.Cluster, reg *prometheus.Registry, log *slog.Logger) (*monitor.Watcher, error) {
	w := &monitor.Watcher{Cluster: cl.Name, Engine: cl.Engine, Interval: time.Duration(cl.Monitor.Interval),
		Errors: metrics.ErrorsTotal(reg), Log: log}
	m, err := engine.Capable[engine.Monitoring](cl.Engine, "be monitored")
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	primary := monitor.Server{Region: cl.Region, DSN: cl.DSN}
	var replicas []monitor.Server
	for _, r := range cl.Replicas {
		replicas = append(replicas, monitor.Server{Name: r.Name, Region: r.Region, DSN: r.DSN})
	}
	w.Prober, w.Heart, err = m.Probes(cl, engine.HeartbeatOn(cl), primary, replicas)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: monitor: %w", cl.Name, err)
	}
	return w, nil
}

// apiCluster is what the JSON API serves about cl.
func apiCluster(cl config.Cluster, to []*storage.Region, sh binlog.Shipper, backups snapshots.Engine, sched *snapshots.Scheduler, w *monitor.Watcher) api.Cluster {
	c := api.Cluster{Name: cl.Name, Engine: cl.Engine, Region: cl.Region, ShipTo: cl.ShipTo, Monitor: w.State}
	if sh != nil { // nil for an engine whose log drd does not ship
		c.Shipping = func(now time.Time) []binlog.RegionProgress { _, _, p := sh.Progress(now); return p }
		if sy, ok := sh.(binlog.Syncer); ok {
			c.Sync, c.Server = sy.SyncStatus, sy.SyncServer
		}
		c.Backup = sched.BackupNow
		c.Backups = func(ctx context.Context, region string) ([]snapshots.Summary, error) {
			for _, r := range to {
				if r.Name == region {
					return backups.List(ctx, r)
				}
			}
			return nil, fmt.Errorf("cluster %s does not ship to region %s", cl.Name, region)
		}
	}
	for _, r := range cl.Replicas {
		c.Replicas = append(c.Replicas, api.Replica{Name: r.Name, Region: r.Region})
	}
	return c
}

// apiOptions loads the listener's tokens and TLS files.
func apiOptions(c config.API) (api.Options, error) {
	o := api.Options{ProtectAll: c.ProtectAll}
	if c.TokensFile != "" {
		t, err := api.LoadTokens(c.TokensFile)
		if err != nil {
			return o, err
		}
		o.Tokens = t
	}
	if c.TLS != nil {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return o, fmt.Errorf("drd.api.tls: load cert_file %s and key_file %s: %w", c.TLS.CertFile, c.TLS.KeyFile, err)
		}
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if c.TLS.ClientCAFile != "" {
			pem, err := os.ReadFile(c.TLS.ClientCAFile)
			if err != nil {
				return o, fmt.Errorf("drd.api.tls.client_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("drd.api.tls.client_ca_file %s holds no PEM certificate", c.TLS.ClientCAFile)
			}
			o.TLS.ClientCAs, o.TLS.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
	}
	return o, nil
}

// copyJobs builds the scheduled copies' component, nil when none is configured.
func copyJobs(cfg *config.Config, regions []*storage.Region, jobsStore storage.Store, m *snapshots.CopyMetrics, log *slog.Logger) (*snapshots.Jobs, error) {
	if len(cfg.Copies) == 0 && len(cfg.Images) == 0 && len(cfg.VolumeSnapshots) == 0 {
		return nil, nil
	}
	byName := map[string]*storage.Region{}
	for _, r := range regions {
		byName[r.Name] = r
	}
	open := func(name string) (*storage.Region, error) { return byName[name], nil } // validated by config
	jobs := &snapshots.Jobs{Metrics: m, Runner: &schedule.Runner{Store: jobsStore, Log: log}}
	for _, cp := range cfg.Copies {
		cl, _ := cfg.Cluster(cp.Cluster)
		j, err := snapshots.NewBackupSetJob(cp, cl.Engine, open, log)
		if err != nil {
			return nil, err
		}
		jobs.Jobs = append(jobs.Jobs, j)
	}
	// One Manager for all entries: its limit on copies in flight is per
	// destination region, across entries.
	jobs.Jobs = append(jobs.Jobs, ec2.Jobs(cfg, ec2.NewManager(cfg, log))...)
	return jobs, nil
}

func serve(parent context.Context, o options, stderr io.Writer, exit func(int)) error {
	log, err := logging.New(stderr, o.logLevel)
	if err != nil {
		return usageError{err}
	}
	cfg, err := config.Load(config.Resolve(o.configPath))
	if err != nil {
		return usageError{err}
	}
	if o.listen != "" {
		cfg.Drd.Listen = o.listen
	}
	info := buildinfo.Get()
	log.Info("drd starting", "version", info.Version, "config", cfg.Path,
		"regions", len(cfg.Regions), "clusters", len(cfg.Clusters))

	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := lifecycle.SignalContext(parent, log, exit)
	defer stop()

	reg := monitor.NewRegistry(info)
	storeMetrics := storage.NewMetrics(reg)
	regions := make([]*storage.Region, 0, len(cfg.Regions))
	for _, rc := range cfg.Regions {
		r, err := drkitregions.Open(ctx, cfg, rc.Name, storage.RegionOptions{Metrics: storeMetrics, Log: log})
		if err != nil {
			return usageError{err}
		}
		regions = append(regions, r)
	}

	var jobsStore storage.Store // validated: drd.jobs_region is a configured region
	for _, r := range regions {
		if r.Name == cfg.Drd.JobsRegion {
			jobsStore = r.Store
		}
	}
	group := lifecycle.NewGroup(log)
	holderID, leaseHolder := lease.ProcessID(), lease.HolderGauge()
	if cfg.Drd.HA {
		reg.MustRegister(leaseHolder)
		log.Info("high availability: clusters ship from the drd holding their lease", "holder", holderID, "lease_ttl", time.Duration(cfg.Drd.LeaseTTL).String())
	}
	group.Add(&memoryTrim{every: time.Minute, threshold: 16 << 20, log: log})
	shipped := &binlog.Collector{}
	backupMetrics := snapshots.NewBackupMetrics(reg)
	drillMetrics := drill.NewMetrics(reg)
	drillSlots := make(chan struct{}, 1) // one drill at a time on this host
	// A scrape sees probes at most a second old: alerts wait for the scrape
	// and the rule evaluation, not also for the next probe interval.
	probed := &monitor.Collector{MaxAge: time.Second}
	var served []api.Cluster
	for _, cl := range cfg.Clusters {
		to := shipRegions(cl, regions)
		cl, cw := replication.Follow(ctx, cl, to, log)
		e, err := engine.Lookup(cl.Engine)
		if err != nil {
			log.Warn("this engine is not built in yet; the cluster is ignored", "cluster", cl.Name, "err", err)
			continue
		}
		var (
			backups snapshots.Engine
			shipper engine.Shipper
		)
		if sh, ok := e.(engine.Shipping); ok {
			shipper = sh.NewShipper(cl, regions, log)
		}
		if sc, ok := e.(engine.Scheduling); ok {
			backups = sc.BackupEngine(cl, to, log)
		}
		if _, ok := e.(engine.Monitoring); !ok && shipper == nil {
			log.Warn("drd can do nothing for this engine yet; the cluster is ignored", "cluster", cl.Name, "engine", cl.Engine)
			continue
		}
		if shipper == nil {
			log.Info("this engine ships no log and takes no backup yet; its replicas are watched", "cluster", cl.Name, "engine", cl.Engine)
		}
		var sched *snapshots.Scheduler
		// leased run only on the drd holding the cluster's lease under
		// drd.ha: shipping, backups and prune, sync checks, drills.
		var leased []lifecycle.Component
		if shipper != nil {
			shipped.Shippers = append(shipped.Shippers, shipper)
			sched = &snapshots.Scheduler{Cluster: cl, Regions: to, Engine: backups, Metrics: backupMetrics, Log: log,
				Jobs: &schedule.Runner{Store: jobsStore, Log: log}}
			leased = append(leased, shipper, sched)
		}
		w, err := watcher(cl, reg, log)
		if err != nil {
			return usageError{err}
		}
		w.Lifecycle = cw.Lifecycle
		probed.Watchers = append(probed.Watchers, w)
		group.Add(w)
		group.Add(cw)
		if cl.SyncCheck.Schedule != "" {
			leased = append(leased, &replall.SyncChecks{Cluster: cl, Runner: &schedule.Runner{Store: jobsStore, Log: log}, Watcher: w, Log: log})
		}
		if cl.Drill.Schedule != "" {
			leased = append(leased, &drill.Drills{Config: cfg, Cluster: cl, Runner: &schedule.Runner{Store: jobsStore, Log: log}, Jobs: jobsStore, Metrics: drillMetrics, Slots: drillSlots, Log: log})
		}
		switch {
		case len(leased) == 0:
		case cfg.Drd.HA:
			// Only the lease's holder runs them; the others stand by
			// (drkit_lease_holder 0).
			group.Add(&lease.Guard{Cluster: cl.Name, Holder: leaseHolder, Components: leased,
				Lease: &lease.Lease{Store: jobsStore, Key: lease.Key(cl.Name), Holder: holderID, TTL: time.Duration(cfg.Drd.LeaseTTL), Log: log}})
		default:
			for _, c := range leased {
				group.Add(c)
			}
		}
		served = append(served, apiCluster(cl, to, shipper, backups, sched, w))
	}
	jobs, err := copyJobs(cfg, regions, jobsStore, snapshots.NewCopyMetrics(reg), log)
	if err != nil {
		return usageError{err}
	}
	switch {
	case jobs == nil:
	case cfg.Drd.HA:
		// Copies (backup sets, images, snapshots) run on the holder of a
		// lease of their own, so that they need not follow one cluster's.
		group.Add(&lease.Guard{Cluster: "copies", Components: []lifecycle.Component{jobs},
			Lease: &lease.Lease{Store: jobsStore, Key: lease.CopiesKey, Holder: holderID, TTL: time.Duration(cfg.Drd.LeaseTTL), Log: log}})
	default:
		group.Add(jobs)
	}
	httpOpts, err := apiOptions(cfg.Drd.API)
	if err != nil {
		return usageError{err}
	}
	httpOpts.Addr, httpOpts.Gatherer, httpOpts.Ready, httpOpts.Log = cfg.Drd.Listen, reg, group.Ready, log
	httpOpts.Version, httpOpts.Clusters = info.Version, served
	described := append(snapshots.Described(cfg), ec2.Jobs(cfg, nil)...)
	for _, cl := range cfg.Clusters {
		if cl.SyncCheck.Schedule != "" {
			described = append(described, replall.DescribeCheck(cl))
		}
		if cl.Drill.Schedule != "" {
			described = append(described, snapshots.CopyJob{Cluster: cl.Name, From: cl.Region, To: "drill sandbox", Job: drill.Describe(cl)})
		}
	}
	httpOpts.Schedules = func(ctx context.Context) []snapshots.JobStatus {
		return snapshots.Statuses(ctx, &schedule.Runner{Store: jobsStore}, described, nil)
	}
	httpOpts.Drills = func(ctx context.Context) ([]drill.Report, error) {
		var out []drill.Report
		for _, cl := range cfg.Clusters {
			reps, err := drill.List(ctx, jobsStore, cl.Name)
			if err != nil {
				return nil, fmt.Errorf("jobs region %s: %w", cfg.Drd.JobsRegion, err)
			}
			out = append(out, reps...)
		}
		slices.SortFunc(out, func(a, b drill.Report) int { return b.Started.Compare(a.Started) })
		return out, nil
	}
	group.Add(api.NewServer(httpOpts))
	reg.MustRegister(shipped, probed)
	group.Add(&storage.Maintainer{
		Regions:    regions,
		Metrics:    storeMetrics,
		Log:        log,
		SweepAfter: time.Duration(cfg.Storage.SweepAfter),
		Owns:       storage.OwnedPrefixes(cfg.KeyPrefixes()...),
	})
	if err := group.Run(ctx); err != nil {
		return err
	}
	log.Info("drd stopped")
	return nil
}
