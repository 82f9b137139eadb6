package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/snapshots/ec2"
	"github.com/drkit/drkit/snapshots/schedule"
	"github.com/drkit/drkit/storage"
)

// jobHistories reads every scheduled job's records from the jobs region.
func jobHistories(ctx context.Context, cfg *config.Config) []snapshots.JobStatus {
	jobs := append(snapshots.Described(cfg), ec2.Jobs(cfg, nil)...)
	if len(jobs) == 0 {
		return nil
	}
	r, err := regions.Open(ctx, cfg, cfg.Drd.JobsRegion, storage.RegionOptions{})
	if err != nil {
		return snapshots.Statuses(ctx, nil, jobs, fmt.Errorf("jobs region %s: %w", cfg.Drd.JobsRegion, err))
	}
	return snapshots.Statuses(ctx, &schedule.Runner{Store: r.Store}, jobs, nil)
}

// printSchedules prints one line per scheduled job: its newest run and newest success.
func printSchedules(w io.Writer, hist []snapshots.JobStatus) error {
	if len(hist) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSCHEDULED JOB\tSCHEDULE\tLAST RUN\tRESULT\tLAST SUCCESS\tNOTE")
	for _, h := range hist {
		last, result, success, note := "-", "-", "-", h.Error
		if len(h.Runs) > 0 {
			r := h.Runs[0]
			last, result = r.Start.Format(time.RFC3339), r.Status
			if r.Status == schedule.StatusFailed {
				note = r.Error
			} else if note == "" {
				note = r.Detail
			}
		}
		for _, r := range h.Runs {
			if r.Status == schedule.StatusOK {
				success = r.End.Format(time.RFC3339)
				break
			}
		}
		what := h.Cluster // a backup-set copy's; image and snapshot jobs have their name
		switch {
		case h.Kind == snapshots.KindBaseBackup:
			what += " base backup:"
		case what == "":
			what = h.Name + ":"
		}
		fmt.Fprintf(tw, "%s %s -> %s\t%s\t%s\t%s\t%s\t%s\n", what, h.From, h.To, h.Schedule, last, result, success, note)
	}
	return tw.Flush()
}

func newSchedulesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "schedules",
		Short: "The scheduled jobs (base backups, copies) and their recent runs, from the jobs region",
		Long: `schedules reads the records drd keeps of every run of the scheduled jobs (base backups,
copies, image and volume snapshot copies)
(in drd.jobs_region: start, end, result, objects and bytes, which drd ran it),
so it works whether drd runs or not. --json prints every recorded run.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			hist := jobHistories(cmd.Context(), cfg)
			if g.json {
				return printList(g, hist)
			}
			if len(hist) == 0 {
				_, err := fmt.Fprintf(g.stdout, "no scheduled jobs (base_backup.schedule, copies, images, volume_snapshots) are configured in %s\n", cfg.Path)
				return err
			}
			return printSchedules(g.stdout, hist)
		},
	}
}
