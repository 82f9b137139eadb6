package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/snapshots/schedule"
	"github.com/drkit/drkit/storage"
)

// copyHistory is one configured copy and its recorded runs, newest first.
type copyHistory struct {
	Job      string            `json:"job"`
	Cluster  string            `json:"cluster"`
	From     string            `json:"source_region"`
	To       string            `json:"target_region"`
	Schedule string            `json:"schedule"`
	Runs     []schedule.Record `json:"runs"`
	Error    string            `json:"error,omitempty"`
}

// copyHistories reads every configured copy's records from the jobs region.
func copyHistories(ctx context.Context, cfg *config.Config) []copyHistory {
	if len(cfg.Copies) == 0 {
		return nil
	}
	r, err := storage.OpenRegion(ctx, cfg, cfg.Drd.JobsRegion, storage.RegionOptions{})
	out := make([]copyHistory, 0, len(cfg.Copies))
	for _, cp := range cfg.Copies {
		h := copyHistory{Job: snapshots.CopyJobName(cp), Cluster: cp.Cluster, From: cp.From, To: cp.To, Schedule: cp.Schedule, Runs: []schedule.Record{}}
		if err != nil {
			h.Error = fmt.Sprintf("jobs region %s: %v", cfg.Drd.JobsRegion, err)
		} else if runs, rerr := (&schedule.Runner{Store: r.Store}).Records(ctx, h.Job); rerr != nil {
			h.Error = rerr.Error()
		} else if runs != nil {
			h.Runs = runs
		}
		out = append(out, h)
	}
	return out
}

// printCopies prints one line per copy: its newest run and newest success.
func printCopies(w io.Writer, hist []copyHistory) error {
	if len(hist) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCOPY\tSCHEDULE\tLAST RUN\tRESULT\tLAST SUCCESS\tNOTE")
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
		fmt.Fprintf(tw, "%s %s -> %s\t%s\t%s\t%s\t%s\t%s\n", h.Cluster, h.From, h.To, h.Schedule, last, result, success, note)
	}
	return tw.Flush()
}

func newSchedulesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "schedules",
		Short: "The scheduled copies and their recent runs, from the jobs region",
		Long: `schedules reads the records drd keeps of every run of the configured copies
(in drd.jobs_region: start, end, result, objects and bytes, which drd ran it),
so it works whether drd runs or not. --json prints every recorded run.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			hist := copyHistories(cmd.Context(), cfg)
			if g.json {
				return printList(g, hist)
			}
			if len(hist) == 0 {
				_, err := fmt.Fprintf(g.stdout, "no copies are configured in %s\n", cfg.Path)
				return err
			}
			return printCopies(g.stdout, hist)
		},
	}
}
