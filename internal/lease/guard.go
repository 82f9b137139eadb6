package lease

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drkit/drkit/internal/lifecycle"
	"github.com/drkit/drkit/storage"
)

// Guard runs components (a cluster's log shipper and its scheduled jobs)
// only while this drd holds the cluster's lease; another drd with the same
// config stands by and takes over when the holder stops renewing. It is a
// lifecycle.Component.
type Guard struct {
	Lease      *Lease
	Cluster    string
	Components []lifecycle.Component
	// Holder, if set, is the drkit_lease_holder gauge vector (cluster).
	Holder *prometheus.GaugeVec

	holding atomic.Bool
}

// Name implements lifecycle.Component.
func (g *Guard) Name() string { return "lease/" + g.Cluster }

// Run implements lifecycle.Component.
func (g *Guard) Run(ctx context.Context) error {
	g.set(false)
	g.Lease.Run(ctx, func(ctx context.Context, gen uint64) {
		ctx = storage.WithFence(ctx, gen) // the fencing token of what they write
		g.set(true)
		defer g.set(false)
		var wg sync.WaitGroup
		errs := make([]error, len(g.Components))
		for i, c := range g.Components {
			wg.Go(func() { errs[i] = c.Run(ctx) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil && ctx.Err() == nil && g.Lease.Log != nil {
			g.Lease.Log.Error("a component stopped while holding the lease", "cluster", g.Cluster, "err", err)
		}
	})
	return nil
}

func (g *Guard) set(v bool) {
	g.holding.Store(v)
	if g.Holder != nil {
		n := 0.0
		if v {
			n = 1
		}
		g.Holder.WithLabelValues(g.Cluster).Set(n)
	}
}

// Ready implements lifecycle.ReadyChecker: a standby is ready; a holder is
// when its components are.
func (g *Guard) Ready() error {
	if !g.holding.Load() {
		return nil
	}
	for _, c := range g.Components {
		if r, ok := c.(lifecycle.ReadyChecker); ok {
			if err := r.Ready(); err != nil {
				return fmt.Errorf("%s: %w", c.Name(), err)
			}
		}
	}
	return nil
}

// CopiesKey is the lease object of the copy jobs (backup sets, images,
// volume snapshots), in the jobs region; no cluster's key can be it (a
// cluster's name has no underscore first).
const CopiesKey = "_drkit/leases/_copies.json"

// Key is the lease object of a cluster, in the jobs region.
func Key(cluster string) string { return "_drkit/leases/" + cluster + ".json" }

// HolderGauge is drkit_lease_holder{cluster}: 1 on the drd that holds the
// cluster's lease, 0 on a standby.
func HolderGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drkit_lease_holder",
		Help: "1 when this drd holds the cluster's lease (ships its log and runs its jobs), 0 when it stands by."}, []string{"cluster"})
}

// ProcessID names this drd among the lease's contenders: host, pid and a
// random suffix (a restarted drd with the same pid is another holder).
func ProcessID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}
