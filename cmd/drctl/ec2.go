package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/snapshots/ec2"
	"github.com/drkit/drkit/snapshots/outscale"
)

// machineFlags selects image or volume snapshot entries and destinations.
type machineFlags struct {
	g      *globals
	kind   ec2.Kind
	name   string
	to     string
	dryRun bool
}

// entryReport is one entry's outcome in one region, as --json prints it.
type entryReport struct {
	Entry string `json:"entry"`
	ec2.Report
}

// resolve returns the manager and the selected entries.
func (f *machineFlags) resolve() (*ec2.Manager, []ec2.Spec, error) {
	cfg, err := f.g.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	var specs []ec2.Spec
	if f.name != "" {
		s, err := ec2.SpecNamed(cfg, f.kind, f.name)
		if err != nil {
			return nil, nil, usageErr(err)
		}
		specs = []ec2.Spec{s}
	} else {
		for _, s := range ec2.Specs(cfg) {
			if s.Kind == f.kind {
				specs = append(specs, s)
			}
		}
		if len(specs) == 0 {
			return nil, nil, usageErr(fmt.Errorf("no %s entries are configured in %s (%s)", f.kind, cfg.Path, entryKey(f.kind)))
		}
	}
	if f.to != "" {
		for i, s := range specs {
			if !slices.Contains(s.To, f.to) {
				return nil, nil, usageErr(fmt.Errorf("%s does not copy to %s; its destinations: %s", s.Name, f.to, strings.Join(s.To, ", ")))
			}
			specs[i].To = []string{f.to}
		}
	}
	m := ec2.NewManager(cfg, f.g.log())
	if oc, ok := m.Providers["outscale"].(*outscale.Clients); ok {
		if line := f.g.stageLine(); line != nil {
			oc.Progress = func(p outscale.Progress) { line(p.Source, p.Stage, p.Done, p.Total) }
		}
	}
	return m, specs, nil
}

func entryKey(k ec2.Kind) string {
	if k == ec2.KindImage {
		return "the images: list"
	}
	return "the volume_snapshots: list"
}

func (f *machineFlags) add(cmd *cobra.Command, dryRun bool) {
	cmd.Flags().StringVar(&f.name, "name", "", "the entry (default: every entry)")
	cmd.Flags().StringVar(&f.to, "to", "", "one destination region (default: every destination of the entry)")
	if dryRun {
		cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "print what would be done, change nothing")
	}
}

func newImagesCmd(g *globals) *cobra.Command {
	return newMachineCmd(g, ec2.KindImage, "images", "machine images (AMIs, OMIs)")
}

func newSnapshotsCmd(g *globals) *cobra.Command {
	return newMachineCmd(g, ec2.KindSnapshot, "snapshots", "volume snapshots (EBS, OUTSCALE BSU)")
}

func newMachineCmd(g *globals, k ec2.Kind, use, what string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: "List, copy and prune the cross-region copies of " + what,
		Long: `The ` + use + ` commands act on the configured ` + entryKey(k) + ` entries through
the EC2 API (credentials from the AWS SDK's chain; ec2.profile, ec2.endpoints),
or for provider: outscale entries through OUTSCALE's API and OOS buckets
(export, copy, import; keys in $OSC_ACCESS_KEY and $OSC_SECRET_KEY).
list shows, per destination, the copies kept, to copy and to delete; copy and
prune do what drd's scheduled runs do, now. Each takes --dry-run.`,
		Args: usageArgs(cobra.NoArgs),
	}
	for _, a := range machineActions {
		cmd.AddCommand(a.command(g, k))
	}
	return cmd
}

// machineAction is one of the list, copy and prune subcommands: what it
// does per entry and destination, and how its reports print.
type machineAction struct {
	use, short, long string
	dryRun           bool // takes --dry-run
	// before runs once per selected entry first (copy: take snapshots).
	before func(ctx context.Context, g *globals, m *ec2.Manager, s ec2.Spec, dryRun bool) error
	each   func(ctx context.Context, m *ec2.Manager, s ec2.Spec, to string, dryRun bool) (ec2.Report, error)
	text   func(io.Writer, []entryReport, bool)
}

func (a machineAction) command(g *globals, k ec2.Kind) *cobra.Command {
	f := &machineFlags{g: g, kind: k}
	cmd := &cobra.Command{Use: a.use, Short: a.short, Long: a.long, Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, specs, err := f.resolve()
			if err != nil {
				return err
			}
			var errs []error
			for _, s := range specs {
				if a.before != nil {
					errs = append(errs, a.before(cmd.Context(), g, m, s, f.dryRun))
				}
			}
			reps, err := forEachDestination(cmd.Context(), specs, func(ctx context.Context, s ec2.Spec, to string) (ec2.Report, error) {
				return a.each(ctx, m, s, to, f.dryRun)
			})
			if perr := f.print(reps, a.text); perr != nil {
				return perr
			}
			return errors.Join(append(errs, err)...)
		}}
	f.add(cmd, a.dryRun)
	return cmd
}

var machineActions = []machineAction{{
	use: "list", short: "Show each destination's copies and what the next run would do",
	each: func(ctx context.Context, m *ec2.Manager, s ec2.Spec, to string, _ bool) (ec2.Report, error) {
		pl, err := m.PlanFor(ctx, s, to)
		return ec2.Report{Region: to, Plan: pl}, err
	},
	text: printPlans,
}, {
	use: "copy", short: "Copy what each destination lacks and wait for the copies", dryRun: true,
	long: `copy copies the newest sources that retention keeps to each destination
that lacks them (CopyImage/CopySnapshot called in the destination), tags and
waits for them (ec2.copy_timeout), and deletes copies that failed. A volume
snapshot entry with create first snapshots its volumes. Run again after an
interruption: copies already made are found by their description and tag.`,
	before: takeSnapshots,
	each: func(ctx context.Context, m *ec2.Manager, s ec2.Spec, to string, dryRun bool) (ec2.Report, error) {
		return m.CopyTo(ctx, s, to, dryRun)
	},
	text: printCopied,
}, {
	use: "prune", short: "Delete the copies retention no longer keeps", dryRun: true,
	long: `prune deletes, in each destination, the copies outside the entry's keep and
keep_within (and failed or timed-out ones): images are deregistered and their
snapshots deleted unless another image uses them. The newest good copy and any
snapshot a registered image uses are never deleted.`,
	each: func(ctx context.Context, m *ec2.Manager, s ec2.Spec, to string, dryRun bool) (ec2.Report, error) {
		return m.Prune(ctx, s, to, dryRun)
	},
	text: printPruned,
}}

// takeSnapshots runs a volume snapshot entry's create step before its copies.
func takeSnapshots(ctx context.Context, g *globals, m *ec2.Manager, s ec2.Spec, dryRun bool) error {
	if len(s.VolumeTags) == 0 {
		return nil
	}
	ids, _, err := m.Take(ctx, s, dryRun)
	verb := "took"
	if dryRun {
		verb = "would snapshot volumes"
	}
	if !g.json && len(ids) > 0 {
		fmt.Fprintf(g.stdout, "%s %s in %s: %s\n", s.Name, verb, s.SourceRegion, strings.Join(ids, ", "))
	}
	return err
}

// forEachDestination runs fn for every entry and destination, one after the
// other (the copies within one run in parallel), and keeps going past errors.
func forEachDestination(ctx context.Context, specs []ec2.Spec, fn func(context.Context, ec2.Spec, string) (ec2.Report, error)) ([]entryReport, error) {
	var out []entryReport
	var errs []error
	for _, s := range specs {
		for _, to := range s.To {
			rep, err := fn(ctx, s, to)
			out = append(out, entryReport{Entry: s.Name, Report: rep})
			if err != nil {
				errs = append(errs, fmt.Errorf("%s to %s: %w", s.Name, to, err))
			}
		}
	}
	return out, errors.Join(errs...)
}

func (f *machineFlags) print(reps []entryReport, text func(io.Writer, []entryReport, bool)) error {
	if f.g.json {
		return printList(f.g, reps)
	}
	text(f.g.stdout, reps, f.dryRun)
	return nil
}

func printPlans(w io.Writer, reps []entryReport, _ bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tREGION\tID\tSTATE\tSOURCE\tSOURCE TIME\tNEXT RUN")
	for _, r := range reps {
		row := func(res ec2.Resource, id, action string) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Entry, r.Region, id, orDash(string(res.State)), orDash(res.SourceID()),
				res.SourceTime().UTC().Format(time.RFC3339), action)
		}
		for _, c := range r.Plan.Keep {
			row(c, c.ID, "keep")
		}
		for _, s := range r.Plan.Copy {
			row(ec2.Resource{Tags: map[string]string{ec2.TagSourceID: s.ID}, Created: s.Created}, "-", "copy "+s.ID)
		}
		for _, d := range r.Plan.Delete {
			row(d.Resource, d.ID, "delete: "+d.Reason)
		}
	}
	tw.Flush()
}

func printCopied(w io.Writer, reps []entryReport, dryRun bool) {
	for _, r := range reps {
		if dryRun {
			var ids []string
			for _, s := range r.Plan.Copy {
				ids = append(ids, s.ID)
			}
			fmt.Fprintf(w, "%s to %s: would copy %s\n", r.Entry, r.Region, orNone(ids))
			continue
		}
		fmt.Fprintf(w, "%s to %s: copied %s; failed and cleaned up %s\n", r.Entry, r.Region, orNone(r.Copied), orNone(r.Failed))
	}
}

func printPruned(w io.Writer, reps []entryReport, dryRun bool) {
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	for _, r := range reps {
		fmt.Fprintf(w, "%s in %s: %s %s; kept %d", r.Entry, r.Region, verb, orNone(r.Deleted), len(r.Plan.Keep))
		if len(r.Spared) > 0 {
			fmt.Fprintf(w, "; spared (an image uses them) %s", strings.Join(r.Spared, ", "))
		}
		fmt.Fprintln(w)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}
