package ec2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/snapshots/schedule"
)

// KindTake is the kind of the jobs that snapshot volumes (create).
const KindTake = "volume-snapshot-take"

// NewManager builds the Manager of cfg's ec2 settings.
// The other providers the entries name are built by their registered
// Provider; one that cannot be (its keys missing) fails its entries' runs
// with its error.
func NewManager(cfg *config.Config, log *slog.Logger) *Manager {
	m := &Manager{Clients: &SDKClients{Endpoints: cfg.EC2.Endpoints}, Log: log, Providers: map[string]Clients{},
		MaxConcurrent: cfg.EC2.MaxConcurrentCopies, Timeout: time.Duration(cfg.EC2.CopyTimeout),
		PollMin: time.Duration(cfg.EC2.PollInterval), PollMax: max(time.Duration(cfg.EC2.PollInterval), 2*time.Minute)}
	for _, s := range Specs(cfg) {
		if s.Provider == "" || s.Provider == ProviderEC2 || m.Providers[s.Provider] != nil {
			continue
		}
		p, err := provider(s.Provider)
		var c Clients
		if err == nil {
			c, err = p(cfg, log)
		}
		if err != nil {
			c = failing{err}
		}
		m.Providers[s.Provider] = c
	}
	return m
}

// failing is a provider that could not be built: every call says why.
type failing struct{ err error }

func (f failing) Client(context.Context, string, string) (Cloud, error) { return nil, f.err }

// Specs returns the config's images and volume_snapshots entries.
func Specs(cfg *config.Config) []Spec {
	var out []Spec
	for _, im := range cfg.Images {
		out = append(out, ImageSpec(im, cfg.EC2.Profile))
	}
	for _, sc := range cfg.VolumeSnapshots {
		out = append(out, SnapshotSpec(sc, cfg.EC2.Profile))
	}
	return out
}

// SpecNamed returns the entry of kind k called name.
func SpecNamed(cfg *config.Config, k Kind, name string) (Spec, error) {
	var names []string
	for _, s := range Specs(cfg) {
		if s.Kind != k {
			continue
		}
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Spec{}, fmt.Errorf("no %s entry is called %q in %s; configured: %v", k, name, cfg.Path, names)
}

// JobName is the name (and records' folder) of the job copying s to region.
func JobName(s Spec, region string) string {
	if s.Kind == KindImage {
		return fmt.Sprintf("images-%s-to-%s", s.Name, region)
	}
	return fmt.Sprintf("snapshots-%s-to-%s", s.Name, region)
}

// Jobs returns the scheduled jobs of cfg's entries: one per entry and
// destination (copy, then prune), and for a volume_snapshots entry with
// create one more that takes the snapshots (and prunes the ones it took).
// With m nil the jobs only describe (no Run), as drctl's status needs.
func Jobs(cfg *config.Config, m *Manager) []snapshots.CopyJob {
	var out []snapshots.CopyJob
	for _, s := range Specs(cfg) {
		if len(s.VolumeTags) > 0 {
			j := snapshots.CopyJob{From: s.SourceRegion, To: s.SourceRegion,
				Job: schedule.Job{Name: "snapshots-" + s.Name + "-take", Kind: KindTake, Spec: s.Job}}
			if m != nil {
				j.Job.Run = func(ctx context.Context) (schedule.Result, error) {
					ids, rep, err := m.Take(ctx, s, false)
					return schedule.Result{Objects: len(ids),
						Detail: fmt.Sprintf("%d snapshots taken, %d old ones deleted", len(ids), len(rep.Deleted))}, err
				}
			}
			out = append(out, j)
		}
		for _, to := range s.To {
			j := snapshots.CopyJob{From: s.SourceRegion, To: to, Job: schedule.Job{Name: JobName(s, to), Kind: string(s.Kind), Spec: s.Job}}
			if m != nil {
				j.Job.Run = func(ctx context.Context) (schedule.Result, error) { return m.run(ctx, s, to) }
			}
			out = append(out, j)
		}
	}
	return out
}

// run is one scheduled run for one destination: copy, then prune.
func (m *Manager) run(ctx context.Context, s Spec, to string) (schedule.Result, error) {
	rep, err := m.CopyTo(ctx, s, to, false)
	prep, perr := m.Prune(ctx, s, to, false)
	res := schedule.Result{Objects: len(rep.Copied),
		Detail: fmt.Sprintf("%d copied, %d failed and cleaned up, %d deleted by retention, %d kept", len(rep.Copied), len(rep.Failed), len(prep.Deleted), len(prep.Plan.Keep))}
	return res, errors.Join(err, perr)
}
