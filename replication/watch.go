package replication

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/monitor"
	"github.com/drkit/drkit/storage"
)

// catalogEvery is how often drd re-reads the replication catalog.
const catalogEvery = 15 * time.Second

// Follow returns cl as the replication catalog has it: the newest
// recorded promotion's primary (drctl promote) and the registered replicas
// merged with the config's. An unreadable catalog leaves the config as is.
func Follow(ctx context.Context, cl config.Cluster, to []*storage.Region, log *slog.Logger) (config.Cluster, *CatalogWatch) {
	cw := &CatalogWatch{cat: &Catalog{Cluster: cl.Name, Regions: to, Log: log}, config: cl, log: log}
	v, err := cw.cat.View(ctx, cl)
	if err != nil {
		log.Warn("the replication catalog could not be read; using the config's primary and replicas", "cluster", cl.Name, "err", err)
		v = View{PrimaryDSN: cl.DSN, PrimaryRegion: cl.Region, Replicas: cl.Replicas, Records: map[string]Record{}}
	}
	if v.Promotion != nil {
		log.Info("following the recorded promotion: the primary is the promoted replica", "cluster", cl.Name,
			"replica", v.Promotion.Replica, "region", v.PrimaryRegion, "at", v.Promotion.At)
	}
	cw.start = v
	cw.records.Store(&v.Records)
	cl.DSN, cl.Region, cl.Replicas = v.PrimaryDSN, v.PrimaryRegion, v.Replicas
	return cl, cw
}

// CatalogWatch re-reads the replication catalog: records feed the replicas'
// lifecycle states, and a new promotion or a changed set of replicas stops
// drd cleanly (shippers hand over what they hold) and restarts it on the new
// primary and replicas: Run returns a NewShape error for that.
type CatalogWatch struct {
	cat     *Catalog
	config  config.Cluster
	start   View
	records atomic.Pointer[map[string]Record]
	log     *slog.Logger
}

// Name implements lifecycle.Component.
func (c *CatalogWatch) Name() string { return "replication-catalog/" + c.config.Name }

// Run implements lifecycle.Component.
func (c *CatalogWatch) Run(ctx context.Context) error {
	t := time.NewTicker(catalogEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, err := c.cat.View(ctx, c.config)
		if err != nil {
			c.log.Debug("replication catalog not readable", "cluster", c.config.Name, "err", err)
			continue
		}
		c.records.Store(&v.Records)
		if changed := c.changed(v); changed != "" {
			return NewShape{What: changed}
		}
	}
}

// NewShape is CatalogWatch's reason to stop: drd restarts on the cluster's
// new shape.
type NewShape struct{ What string }

func (n NewShape) Error() string { return n.What + ": drd restarts on the cluster's new shape" }

// changed says what differs from the view drd started with, "" if nothing
// that needs a restart.
func (c *CatalogWatch) changed(v View) string {
	if v.Promotion != nil && (c.start.Promotion == nil || !v.Promotion.At.Equal(c.start.Promotion.At)) {
		return fmt.Sprintf("cluster %s: replica %s was promoted to primary at %s", c.config.Name, v.Promotion.Replica, v.Promotion.At.Format(time.RFC3339))
	}
	names := func(rs []config.Replica) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.Name
		}
		slices.Sort(out)
		return out
	}
	if was, now := names(c.start.Replicas), names(v.Replicas); !slices.Equal(was, now) {
		return fmt.Sprintf("cluster %s: its replicas changed from [%s] to [%s]", c.config.Name, strings.Join(was, " "), strings.Join(now, " "))
	}
	return ""
}

// Lifecycle is the replica's lifecycle state from its record and probe.
func (c *CatalogWatch) Lifecycle(s monitor.ServerState) string {
	recs := *c.records.Load()
	if rec, ok := recs[s.Replica]; ok {
		return State(&rec, &s)
	}
	return State(nil, &s)
}
