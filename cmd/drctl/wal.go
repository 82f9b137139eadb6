package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/drill"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/internal/sandbox"
	"github.com/drkit/drkit/storage"
)

// Exit codes of wal-fetch, as PostgreSQL reads them: 1 ends recovery normally
// ("no more WAL"); above 125 aborts recovery, which is what any other failure
// must do, or a corrupt object would silently end the restore early.
const (
	exitWALNotFound = 1
	exitWALAbort    = 127
)

func newWALFetchCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var prefetch int
	cmd := &cobra.Command{
		Use:   "wal-fetch WALFILE DEST",
		Short: "PostgreSQL restore_command: fetch a WAL file from a region",
		Long: `wal-fetch writes WAL file WALFILE (%f) to DEST (%p). On a miss it also fetches
the next --prefetch segments in parallel into pg_wal/.drkit-prefetch.

Exit codes: 0 fetched; 1 the region has no such file (the normal end of
recovery); 127 anything else (corrupt object, store unreachable, bad config):
PostgreSQL then aborts recovery instead of ending it early without that WAL.`,
		// A usage error must abort recovery too (exit 2 would end it).
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(2)(cmd, args); err != nil {
				return &exitError{code: exitWALAbort, err: err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			defer func() {
				// A panic must abort recovery too: Go exits 2 on one, which
				// PostgreSQL reads as "no more WAL" and promotes early.
				if p := recover(); p != nil {
					err = &exitError{code: exitWALAbort, err: fmt.Errorf("wal-fetch %s: internal error: %v", args[0], p)}
				}
			}()
			err = walFetch(cmd.Context(), cf, args[0], args[1], prefetch)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, engine.ErrLogNotFound):
				return &exitError{code: exitWALNotFound, err: err}
			default:
				return &exitError{code: exitWALAbort, err: err}
			}
		},
	}
	cf.addFlags(cmd, "the region (default: the cluster's)")
	cmd.Flags().IntVar(&prefetch, "prefetch", 8, "segments to fetch ahead in parallel")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: exitWALAbort, err: err} })
	return cmd
}

func walFetch(ctx context.Context, cf *clusterFlags, name, dest string, prefetch int) error {
	cfg, cl, err := cf.resolve()
	if err != nil {
		return err
	}
	a, err := capable[engine.Archiving](cl, "serve as restore_command")
	if err != nil {
		return err
	}
	r, err := cf.openRegion(ctx, cfg, cl, true)
	if err != nil {
		return err
	}
	stats := os.Getenv(sandbox.FetchStatsEnv)
	if stats == "" {
		return a.FetchLog(ctx, cf.env(cfg, cl), r, name, dest, prefetch)
	}
	// A drill's sandboxed server: read only, and what was read and how
	// long it took go into the drill's report.
	t0, m := time.Now(), &drill.Meter{}
	err = a.FetchLog(ctx, cf.env(cfg, cl), drill.ReadOnly(r, m), name, dest, prefetch)
	if serr := sandbox.AppendFetchStats(stats, m.Bytes(), time.Since(t0)); serr != nil && err == nil {
		err = serr
	}
	return err
}

func newWALPushCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	cmd := &cobra.Command{
		Use:   "wal-push PATH",
		Short: "PostgreSQL archive_command: store a WAL file in every ship_to region",
		Long: `wal-push stores the WAL file at PATH (%p) in every region the cluster ships to,
and succeeds only when every region in required_regions (default: every
ship_to region) holds it, so PostgreSQL recycles the file only then; a failure
in an optional region is reported on stderr and does not stop archiving. For setups where drd cannot use a replication connection.
PostgreSQL runs it as its own user: that user must be able to read the config
and write the stores (for file:// regions, own the folders).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			a, err := capable[engine.Archiving](cl, "serve as archive_command")
			if err != nil {
				return err
			}
			if _, err := os.Stat(args[0]); err != nil {
				return usageErr(err)
			}
			var errs []error
			for _, name := range cl.ShipTo {
				r, err := regions.Open(cmd.Context(), cfg, name, storage.RegionOptions{})
				if err == nil {
					err = a.PushLog(cmd.Context(), cf.env(cfg, cl), r, args[0])
				}
				switch {
				case err == nil:
				case slices.Contains(cl.RequiredRegions, name):
					errs = append(errs, fmt.Errorf("required region %s: %w", name, err))
				default:
					// An optional region that is down must not stop archiving
					// (pg_wal would fill): it is said, and drd or a copy
					// catches the region up later.
					fmt.Fprintf(g.stderr, "drctl: wal-push %s: optional region %s: %v\n", filepath.Base(args[0]), name, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	cf.addFlags(cmd, "")
	return cmd
}
