package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	_ "github.com/drkit/drkit/internal/engine/all" // every engine registers itself
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// clusterFlags resolves --cluster (default: the only cluster in the config)
// and --region.
type clusterFlags struct {
	g       *globals
	cluster string
	region  string
}

func (cf *clusterFlags) resolve() (*config.Config, config.Cluster, error) {
	cfg, err := cf.g.loadConfig()
	if err != nil {
		return nil, config.Cluster{}, err
	}
	if cf.cluster == "" {
		if len(cfg.Clusters) != 1 {
			return nil, config.Cluster{}, usageErr(fmt.Errorf("--cluster is needed: %s has %d clusters", cfg.Path, len(cfg.Clusters)))
		}
		cf.cluster = cfg.Clusters[0].Name
	}
	cl, ok := cfg.Cluster(cf.cluster)
	if !ok {
		return nil, cl, usageErr(fmt.Errorf("cluster %q is not in %s", cf.cluster, cfg.Path))
	}
	return cfg, cl, nil
}

// capable returns the capability T of cl's engine, or a usage error saying,
// by name, that the engine cannot do what (a verb phrase) yet.
func capable[T any](cl config.Cluster, what string) (T, error) {
	c, err := engine.Capable[T](cl.Engine, what)
	if err != nil {
		return c, usageErr(fmt.Errorf("cluster %s: %w", cl.Name, err))
	}
	return c, nil
}

// env is what an engine capability gets.
func (cf *clusterFlags) env(cfg *config.Config, cl config.Cluster) engine.Env {
	return engine.Env{Config: cfg, Cluster: cl, Log: cf.g.log()}
}

// addFlags declares --cluster and, when regionHelp is set, --region.
func (cf *clusterFlags) addFlags(cmd *cobra.Command, regionHelp string) {
	cmd.Flags().StringVar(&cf.cluster, "cluster", "", "the cluster (default: the only one)")
	if regionHelp != "" {
		cmd.Flags().StringVar(&cf.region, "region", "", regionHelp)
	}
}

// clusterRegion resolves the cluster and opens its region (--region, default the
// cluster's own).
func (cf *clusterFlags) clusterRegion(ctx context.Context, withIdentity bool) (*config.Config, config.Cluster, *storage.Region, error) {
	cfg, cl, err := cf.resolve()
	if err != nil {
		return nil, cl, nil, err
	}
	r, err := cf.openRegion(ctx, cfg, cl, withIdentity)
	return cfg, cl, r, err
}

// openRegion opens one region named by --region (default: the cluster's own).
func (cf *clusterFlags) openRegion(ctx context.Context, cfg *config.Config, cl config.Cluster, withIdentity bool) (*storage.Region, error) {
	name := cf.region
	if name == "" {
		name = cl.Region
	}
	if _, ok := cfg.Region(name); !ok {
		return nil, usageErr(fmt.Errorf("region %q is not configured in %s; configured: %s", name, cfg.Path, regionNames(cfg.Regions)))
	}
	return regions.Open(ctx, cfg, name, storage.RegionOptions{WithIdentity: withIdentity})
}

// shipToRegions opens every region cl ships to.
func shipToRegions(ctx context.Context, cfg *config.Config, cl config.Cluster) ([]*storage.Region, error) {
	var out []*storage.Region
	for _, name := range cl.ShipTo {
		r, err := regions.Open(ctx, cfg, name, storage.RegionOptions{})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// output prints an engine's answer: its value under --json, else its text.
func (g *globals) output(out engine.Output) error {
	if g.json {
		return g.printJSON(out.Value)
	}
	return out.Text(g.stdout)
}

// engineErr gives an engine's error its exit code: 2 for a request it
// refused as malformed, 1 for a failure it marked final (or a log gap), 3
// when what was asked for does not exist.
func engineErr(err error) error {
	var final *engine.FailedError
	switch {
	case err == nil:
		return nil
	case engine.IsUsage(err):
		return usageErr(err)
	case errors.As(err, &final), errors.Is(err, snapshots.ErrGap):
		return &exitError{code: exitFailure, err: err}
	}
	return notFoundOr(err)
}

// warnDamaged names, on stderr, the backup manifests a region could not read.
func warnDamaged(g *globals, region string, damaged []snapshots.Damaged) {
	for _, d := range damaged {
		fmt.Fprintf(g.stderr, "drctl: region %s: skipped damaged backup manifest %s\n", region, d)
	}
}
