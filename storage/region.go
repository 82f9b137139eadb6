package storage

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"filippo.io/age"

	"github.com/drkit/drkit/internal/config"
)

// Region is one configured region: its store and the pipeline over it.
type Region struct {
	Name     string
	Store    Store
	Pipeline *Pipeline
}

// RegionOptions adjust how OpenRegion opens a region.
type RegionOptions struct {
	// Metrics, if set, counts what the store moves.
	Metrics *Metrics
	// OnPart is passed to the store (progress, tests).
	OnPart func(PartEvent)
	// WithIdentity loads the region's age identity file, needed only to read
	// encrypted objects (restores); drd runs without it.
	WithIdentity bool
	Log          *slog.Logger
}

// UploadOptions returns the store options the config's storage block sets.
func UploadOptions(cfg *config.Config) Options {
	return Options{
		PartSize:    int64(cfg.Storage.PartSize),
		Concurrency: cfg.Storage.Concurrency,
		Threshold:   int64(cfg.Storage.MultipartThreshold),
		StateDir:    cfg.StateDir(),
	}
}

// OpenRegion opens the region called name in cfg.
func OpenRegion(ctx context.Context, cfg *config.Config, name string, o RegionOptions) (*Region, error) {
	rc, ok := cfg.Region(name)
	if !ok {
		return nil, fmt.Errorf("region %q is not in %s", name, cfg.Path)
	}
	opts := UploadOptions(cfg)
	opts.OnPart, opts.Log = o.OnPart, o.Log
	st, err := Open(ctx, rc.Store, opts)
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", name, err)
	}
	if o.Metrics != nil {
		st = o.Metrics.Instrument(st, name)
	}
	p := &Pipeline{Store: st, Region: name}
	if cfg.Storage.Compression == "zstd" {
		p.Level = cfg.Storage.CompressionLevel
	}
	if e := rc.Encryption; e != nil {
		if p.Recipients, err = ParseRecipients(e.Recipients); err != nil {
			return nil, fmt.Errorf("region %s: %w", name, err)
		}
		if o.WithIdentity && e.IdentityFile != "" {
			if p.Identities, err = readIdentities(e.IdentityFile); err != nil {
				return nil, fmt.Errorf("region %s: %w", name, err)
			}
		}
	}
	return &Region{Name: name, Store: st, Pipeline: p}, nil
}

func readIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("age identity file %s: %w", path, err)
	}
	return ids, nil
}
