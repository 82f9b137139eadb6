// Package regions opens the regions a config names: it turns the config's
// region and storage blocks into storage's own RegionSpec, so that storage
// does not depend on the config (the composition root converts).
//
// Imports internal/config and storage; imported by cmd, internal/engine's
// adapters and bench.
package regions

import (
	"context"
	"fmt"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/storage"
)

// Upload returns the store options the config's storage block sets (part
// size, concurrency, multipart threshold, the resumable-upload state).
func Upload(cfg *config.Config) storage.Options {
	return storage.Options{
		PartSize:    int64(cfg.Storage.PartSize),
		Concurrency: cfg.Storage.Concurrency,
		Threshold:   int64(cfg.Storage.MultipartThreshold),
		StateDir:    cfg.StateDir(),
	}
}

// Spec describes region name of cfg for storage.
func Spec(cfg *config.Config, name string) (storage.RegionSpec, error) {
	rc, ok := cfg.Region(name)
	if !ok {
		return storage.RegionSpec{}, fmt.Errorf("region %q is not in %s", name, cfg.Path)
	}
	spec := storage.RegionSpec{Name: name, Store: rc.Store, Upload: Upload(cfg)}
	if cfg.Storage.Compression == "zstd" {
		spec.Level = cfg.Storage.CompressionLevel
	}
	if e := rc.Encryption; e != nil {
		spec.Recipients, spec.IdentityFile = e.Recipients, e.IdentityFile
	}
	return spec, nil
}

// Open opens region name of cfg.
func Open(ctx context.Context, cfg *config.Config, name string, o storage.RegionOptions) (*storage.Region, error) {
	spec, err := Spec(cfg, name)
	if err != nil {
		return nil, err
	}
	return storage.OpenRegion(ctx, spec, o)
}
