package storage

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"filippo.io/age"
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

// RegionSpec is what opening a region takes: storage's own description of
// it, which the composition root fills from the config (internal/regions),
// so that storage does not depend on the config's shape.
type RegionSpec struct {
	Name  string
	Store string // the store URL
	// Upload sets multipart part size, concurrency, threshold and the
	// folder of resumable uploads' state.
	Upload Options
	// Level is the zstd level objects are compressed with; 0 stores them
	// plain.
	Level int
	// Recipients are age public keys to encrypt to; none: no encryption.
	Recipients []string
	// IdentityFile holds the age private key(s), read with WithIdentity.
	IdentityFile string
}

// OpenRegion opens the region spec describes.
func OpenRegion(ctx context.Context, spec RegionSpec, o RegionOptions) (*Region, error) {
	name := spec.Name
	opts := spec.Upload
	opts.OnPart, opts.Log = o.OnPart, o.Log
	st, err := Open(ctx, spec.Store, opts)
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", name, err)
	}
	if o.Metrics != nil {
		st = o.Metrics.Instrument(st, name)
	}
	p := &Pipeline{Store: st, Region: name, Level: spec.Level}
	if len(spec.Recipients) > 0 {
		if p.Recipients, err = ParseRecipients(spec.Recipients); err != nil {
			return nil, fmt.Errorf("region %s: %w", name, err)
		}
		if o.WithIdentity && spec.IdentityFile != "" {
			if p.Identities, err = readIdentities(spec.IdentityFile); err != nil {
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
