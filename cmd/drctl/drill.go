package main

import (
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/drill"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/internal/sandbox"
	"github.com/drkit/drkit/storage"
)

func newDrillCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var targetTime, backupID, sandboxRoot string
	var deep bool
	lower := true
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Prove a region restorable: restore it into a throwaway server, check it, report RTO and RPO",
		Long: `drill restores the cluster from --region alone (latest, or --target-time) into a
sandbox drkit starts and removes (a throwaway server on a free port, with its
files in a new folder under --sandbox-dir), then checks it: the newest
heartbeat (or commit) time in the restored data. It reports each phase's
seconds, the RTO (wall time from the start to a usable, checked server), the
RPO (the start, or --target-time, less that newest time) and the bytes read
from the region's store, and exits 1 when any step failed.

A drill only reads the region's store and never connects to the production
server. It runs at nice 10 and the lowest best-effort I/O priority, and so do
its sandbox servers (--lower-priority=false keeps drctl's own); SIGINT or
SIGTERM stops it and removes its sandbox, and a sandbox left by a killed
drill is removed by the next one.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			if _, err := capable[engine.Driller](cl, "run restore drills"); err != nil {
				return err
			}
			if lower {
				if err := sandbox.Lower(os.Getpid()); err != nil {
					g.log().Warn("drill: cannot lower drctl's priority", "err", err)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			o := drill.Options{Env: cf.env(cfg, cl), BackupID: backupID, Root: sandboxRoot, DeepCheck: deep}
			if targetTime != "" {
				t, err := parseTargetTime(targetTime)
				if err != nil {
					return err
				}
				o.TargetTime = &t
			}
			if o.Region, err = cf.openRegion(ctx, cfg, cl, true); err != nil {
				return err
			}
			rep, err := drill.Run(ctx, o)
			if perr := printDrill(g, rep); perr != nil {
				return perr
			}
			if err != nil {
				return &exitError{code: exitFailure, err: fmt.Errorf("drill of cluster %s from region %s failed: %w", cl.Name, o.Region.Name, err)}
			}
			return nil
		},
	}
	cf.addFlags(cmd, "the region to restore from (default: the cluster's)")
	f := cmd.Flags()
	f.StringVar(&targetTime, "target-time", "", targetTimeHelp)
	f.StringVar(&backupID, "backup", "", "restore this backup instead of the newest before the target")
	f.StringVar(&sandboxRoot, "sandbox-dir", "", "where sandbox folders are made (default: $TMPDIR/drkit-drill)")
	f.BoolVar(&deep, "deep-check", false, "also check the whole restored data (PostgreSQL: pg_amcheck --heapallindexed on every database)")
	f.BoolVar(&lower, "lower-priority", true, "run drctl at nice 10 and the lowest best-effort I/O priority")
	return cmd
}

func printDrill(g *globals, rep drill.Report) error {
	if g.json {
		return g.printJSON(rep)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "drill of cluster %s (%s) from region %s, started %s\n", rep.Cluster, rep.Engine, rep.Region, rep.Started.Format(time.RFC3339))
	for _, p := range rep.Phases {
		fmt.Fprintf(tw, "  %s\t%.2f s\n", p.Name, p.Seconds)
	}
	if rep.OK {
		fmt.Fprintf(tw, "RTO\t%.2f s\n", rep.RTOSeconds)
		fmt.Fprintf(tw, "RPO\t%.2f s (newest: %s, %s)\n", rep.RPOSeconds, rep.Newest.Format(time.RFC3339Nano), rep.NewestSource)
	}
	fmt.Fprintf(tw, "fetched\t%d bytes\n", rep.BytesFetched)
	if rep.OK {
		fmt.Fprintln(tw, "result\tOK")
	} else {
		fmt.Fprintf(tw, "result\tFAILED: %s\n", rep.Error)
	}
	return tw.Flush()
}

func newDrillsCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var last int
	cmd := &cobra.Command{
		Use:   "drills",
		Short: "The history of a cluster's scheduled restore drills, from the jobs region",
		Long: `drills reads the reports drd keeps of the cluster's scheduled drills (in
drd.jobs_region), newest first: region, result, RTO, RPO and bytes read, so it
works whether drd runs or not. --json prints the whole reports.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			r, err := regions.Open(cmd.Context(), cfg, cfg.Drd.JobsRegion, storage.RegionOptions{})
			if err != nil {
				return fmt.Errorf("jobs region %s: %w", cfg.Drd.JobsRegion, err)
			}
			reps, err := drill.List(cmd.Context(), r.Store, cl.Name)
			if err != nil {
				return fmt.Errorf("jobs region %s: %w", cfg.Drd.JobsRegion, err)
			}
			slices.Reverse(reps)
			if last > 0 && len(reps) > last {
				reps = reps[:last]
			}
			if g.json {
				if reps == nil {
					reps = []drill.Report{}
				}
				return g.printJSON(reps)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STARTED\tREGION\tRESULT\tRTO S\tRPO S\tFETCHED\tNOTE")
			for _, r := range reps {
				result, rto, rpo := "OK", fmt.Sprintf("%.1f", r.RTOSeconds), fmt.Sprintf("%.1f", r.RPOSeconds)
				if !r.OK {
					result, rto, rpo = "FAILED", "-", "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Started.Format(time.RFC3339), r.Region, result, rto, rpo, r.BytesFetched, r.Error)
			}
			return tw.Flush()
		},
	}
	cf.addFlags(cmd, "")
	cmd.Flags().IntVar(&last, "last", 20, "show the newest N drills (0: all kept)")
	return cmd
}
