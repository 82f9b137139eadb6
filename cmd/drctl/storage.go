package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/all" // every store URL scheme
)

// storageCmd holds the flags shared by the storage subcommands.
type storageCmd struct {
	g        *globals
	region   string
	pipeline bool
}

func newStorageCmd(g *globals) *cobra.Command {
	sc := &storageCmd{g: g}
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Operate on a region's store directly: ls, put, get, rm, sweep",
		Long: `The storage commands work on the objects of one region's store, as WAL-G's
"st" commands do. put and get move bytes as they are; with --pipeline they
compress and encrypt (put) or decrypt, decompress and verify (get) as drd does.`,
	}
	cmd.PersistentFlags().StringVar(&sc.region, "region", "", "the region whose store to use (required)")
	_ = cmd.MarkPersistentFlagRequired("region")
	cmd.AddCommand(sc.lsCmd(), sc.putCmd(), sc.getCmd(), sc.rmCmd(), sc.sweepCmd())
	return cmd
}

func (sc *storageCmd) open(ctx context.Context, withIdentity bool) (*storage.Region, error) {
	cfg, err := sc.g.loadConfig()
	if err != nil {
		return nil, err
	}
	if _, ok := cfg.Region(sc.region); !ok {
		return nil, usageErr(fmt.Errorf("region %q is not configured in %s; configured: %s", sc.region, cfg.Path, regionNames(cfg.Regions)))
	}
	return regions.Open(ctx, cfg, sc.region, storage.RegionOptions{WithIdentity: withIdentity})
}

func (sc *storageCmd) lsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List objects (size, time, key) under a prefix",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := sc.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			var all []storage.ObjectInfo
			tw := tabwriter.NewWriter(sc.g.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			for info, err := range r.Store.List(cmd.Context(), prefix) {
				if err != nil {
					return err
				}
				if sc.g.json {
					all = append(all, info)
					continue
				}
				fmt.Fprintf(tw, "%d\t%s\t %s\t\n", info.Size, info.ModTime.UTC().Format(time.RFC3339), info.Key)
			}
			if sc.g.json {
				return printList(sc.g, all)
			}
			return tw.Flush()
		},
	}
}

func (sc *storageCmd) putCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "put KEY FILE",
		Short: "Upload FILE (or - for stdin) as KEY; large files go in resumable parts",
		Long: `put uploads FILE under KEY. Files above the multipart threshold go in parallel
parts; if put is interrupted, running the same command again resumes the upload
instead of starting over. With --pipeline the object is compressed and encrypted
as drd writes it, and its record (sizes, SHA-256) is printed as JSON: keep it for
get --pipeline --record.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, path := args[0], args[1]
			r, err := sc.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			src, size, closeSrc, err := openSource(path)
			if err != nil {
				return err
			}
			defer closeSrc()
			in, done := sc.g.progress(src, size, "put "+key)
			if size >= 0 {
				in = storage.SizedReader{Reader: in, N: size}
			}
			defer done()
			if sc.pipeline {
				obj, err := r.Pipeline.Put(cmd.Context(), key, in)
				if err != nil {
					return err
				}
				return sc.g.printJSON(obj)
			}
			if err := r.Store.Put(cmd.Context(), key, in); err != nil {
				return err
			}
			if sc.g.json {
				return sc.g.printJSON(map[string]any{"key": key, "size": size, "region": sc.region})
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&sc.pipeline, "pipeline", false, "compress and encrypt as drd does; print the object's record")
	return cmd
}

func (sc *storageCmd) getCmd() *cobra.Command {
	var recordPath string
	cmd := &cobra.Command{
		Use:   "get KEY FILE",
		Short: "Download KEY into FILE (or - for stdout)",
		Long: `get downloads KEY into FILE, writing a temporary file and renaming it into
place only once every byte arrived. With --pipeline --record REC it decrypts
(with the region's identity_file), decompresses and verifies the SHA-256 that
put --pipeline recorded in REC.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, path := args[0], args[1]
			ctx := cmd.Context()
			r, err := sc.open(ctx, sc.pipeline)
			if err != nil {
				return err
			}
			var body io.ReadCloser
			var size int64 = -1
			if sc.pipeline {
				obj, err := readRecord(recordPath, key)
				if err != nil {
					return err
				}
				size = obj.PlainSize
				body, err = r.Pipeline.Open(ctx, obj)
				if err != nil {
					return notFoundOr(err)
				}
			} else {
				info, err := r.Store.Stat(ctx, key)
				if err != nil {
					return notFoundOr(err)
				}
				size = info.Size
				if body, err = r.Store.Get(ctx, key, 0, -1); err != nil {
					return notFoundOr(err)
				}
			}
			defer body.Close()
			in, done := sc.g.progress(body, size, "get "+key)
			defer done()
			return writeTarget(path, in, sc.g.stdout)
		},
	}
	cmd.Flags().BoolVar(&sc.pipeline, "pipeline", false, "decrypt, decompress and verify with --record")
	cmd.Flags().StringVar(&recordPath, "record", "", "the JSON record put --pipeline printed (with --pipeline)")
	return cmd
}

func (sc *storageCmd) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm KEY...",
		Short: "Delete objects (keys that do not exist are ignored)",
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := sc.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			return r.Store.Delete(cmd.Context(), args...)
		},
	}
}

func (sc *storageCmd) sweepCmd() *cobra.Command {
	var olderThan time.Duration
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Abort multipart uploads abandoned longer than --older-than",
		Long: `sweep aborts the region's incomplete multipart uploads started before
--older-than ago, which frees the space their parts hold. drd does this on its
own every hour (storage.sweep_after); MinIO ignores the lifecycle rule that
would do it on the server.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := sc.g.loadConfig()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("older-than") {
				olderThan = time.Duration(cfg.Storage.SweepAfter)
			}
			r, err := sc.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			sw, ok := storage.Unwrap(r.Store).(storage.Sweeper)
			if !ok {
				if sc.g.json {
					return printList[storage.PendingUpload](sc.g, nil)
				}
				_, err := fmt.Fprintf(sc.g.stdout, "%s keeps no incomplete uploads: nothing to sweep\n", r.Store)
				return err
			}
			swept, err := sw.Sweep(cmd.Context(), time.Now().Add(-olderThan), dryRun, storage.OwnedPrefixes(cfg.KeyPrefixes()...))
			if sc.g.json {
				if perr := printList(sc.g, swept); perr != nil {
					return perr
				}
				return err
			}
			verb := "aborted"
			if dryRun {
				verb = "would abort"
			}
			for _, p := range swept {
				fmt.Fprintf(sc.g.stdout, "%s %s (started %s)\n", verb, p.Key, p.Started.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(sc.g.stdout, "%s %d upload(s) older than %s\n", verb, len(swept), olderThan)
			return err
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 24*time.Hour, "abort uploads started longer ago than this (default storage.sweep_after)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be aborted")
	return cmd
}

// openSource opens a file (its size known) or stdin ("-", size unknown).
func openSource(path string) (io.Reader, int64, func(), error) {
	if path == "-" {
		return os.Stdin, -1, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, usageErr(fmt.Errorf("open %s: %w", path, err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return f, fi.Size(), func() { f.Close() }, nil
}

// writeTarget writes r to path atomically (temporary file, fsync, rename), or to
// stdout for "-".
func writeTarget(path string, r io.Reader, stdout io.Writer) error {
	if path == "-" {
		_, err := io.Copy(stdout, r)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".drkit-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("download to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

func readRecord(path, key string) (storage.Object, error) {
	var obj storage.Object
	if path == "" {
		return obj, usageErr(errors.New("--pipeline needs --record FILE: the JSON that put --pipeline printed"))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return obj, usageErr(fmt.Errorf("read record: %w", err))
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return obj, usageErr(fmt.Errorf("record %s is not the JSON put --pipeline prints: %w", path, err))
	}
	if obj.Key != key {
		return obj, usageErr(fmt.Errorf("record %s describes %q, not %q", path, obj.Key, key))
	}
	return obj, nil
}

func notFoundOr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return &exitError{code: exitNotFound, err: err}
	}
	return err
}
