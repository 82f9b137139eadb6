package ec2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Manager runs copies and retention. One Manager serves all entries of a
// drd, so that its per-region limit on copies in flight holds across them.
type Manager struct {
	// Clients are EC2's (entries without a provider, or provider: ec2).
	Clients Clients
	// Providers are the other providers' clients, by name (provider:).
	Providers map[string]Clients
	Log       *slog.Logger
	// MaxConcurrent caps copies in flight per destination region.
	MaxConcurrent int
	// Timeout is how long a copy may stay pending.
	Timeout time.Duration
	// PollMin and PollMax bound the waiters' polling delay (the SDK's
	// defaults, 15 s and 2 min, when zero).
	PollMin, PollMax time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu   sync.Mutex
	sems map[string]chan struct{}
}

// Report is what a run did in one destination region.
type Report struct {
	Region string `json:"region"`
	Plan   Plan   `json:"plan"`
	// Copied lists the new copies, available at the end of the run.
	Copied []string `json:"copied"`
	// Deleted lists what was deleted: copies, and snapshots of deregistered images.
	Deleted []string `json:"deleted"`
	// Failed lists copies that failed or timed out (and were cleaned up).
	Failed []string `json:"failed"`
	// Spared lists snapshots kept because a registered image uses them.
	Spared []string `json:"spared,omitempty"`
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.Default()
}

func (m *Manager) sem(region string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sems == nil {
		m.sems = map[string]chan struct{}{}
	}
	s, ok := m.sems[region]
	if !ok {
		s = make(chan struct{}, max(m.MaxConcurrent, 1))
		m.sems[region] = s
	}
	return s
}

func (m *Manager) planner(s Spec) Planner {
	return Planner{Keep: s.Keep, KeepWithin: s.KeepWithin, Timeout: m.Timeout, Now: m.now()}
}

// cloud is the Cloud of region for entry s's provider.
func (m *Manager) cloud(ctx context.Context, s Spec, region string) (Cloud, error) {
	if s.Provider == "" || s.Provider == ProviderEC2 {
		return m.Clients.Client(ctx, s.Profile, region)
	}
	c, ok := m.Providers[s.Provider]
	if !ok {
		return nil, fmt.Errorf("entry %s: provider %q is not configured", s.Name, s.Provider)
	}
	return c.Client(ctx, s.Profile, region)
}

// PlanFor lists sources and the copies in region and plans, changing nothing.
func (m *Manager) PlanFor(ctx context.Context, s Spec, region string) (Plan, error) {
	pl, _, err := m.plan(ctx, s, region)
	return pl, err
}

// plan returns the plan and the sources it was made from.
func (m *Manager) plan(ctx context.Context, s Spec, region string) (Plan, []Resource, error) {
	src, err := m.cloud(ctx, s, s.SourceRegion)
	if err != nil {
		return Plan{}, nil, err
	}
	dst, err := m.cloud(ctx, s, region)
	if err != nil {
		return Plan{}, nil, err
	}
	sources, err := Sources(ctx, src, s)
	if err != nil {
		return Plan{}, nil, err
	}
	copies, err := Copies(ctx, dst, s, region)
	if err != nil {
		return Plan{}, nil, err
	}
	return m.planner(s).Plan(region, sources, copies), sources, nil
}

func find(rs []Resource, id string) (Resource, bool) {
	i := slices.IndexFunc(rs, func(r Resource) bool { return r.ID == id })
	if i < 0 {
		return Resource{}, false
	}
	return rs[i], true
}

// CopyTo brings region up to date: cleans up failed copies, tags untagged
// ones, copies what retention keeps and region lacks, waits for the copies.
// With dryRun it only plans. Copies that fail are cleaned up and reported
// in the error and in Report.Failed.
func (m *Manager) CopyTo(ctx context.Context, s Spec, region string, dryRun bool) (Report, error) {
	if s.Kind == KindSnapshot && len(s.VolumeTags) > 0 && !dryRun {
		if err := m.waitTaken(ctx, s); err != nil {
			return Report{Region: region}, err
		}
	}
	pl, sources, err := m.plan(ctx, s, region)
	rep := Report{Region: region, Plan: pl, Copied: []string{}, Deleted: []string{}, Failed: []string{}}
	if err != nil || dryRun {
		return rep, err
	}
	dst, err := m.cloud(ctx, s, region)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, d := range pl.Delete {
		if d.State == StateAvailable {
			continue // expired: Prune's job, after the new copies are in
		}
		m.log().Warn("deleting a failed copy", "job", s.Name, "region", region, "id", d.ID, "reason", d.Reason)
		if err := m.delete(ctx, dst, d.Resource, &rep); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range pl.Tag {
		// Untagged: the run that copied it stopped before tagging. Its source
		// is named in its description.
		src := Resource{Kind: s.Kind, ID: c.SourceID(), Created: c.Created, Volume: c.Series()}
		if sr, ok := find(sources, src.ID); ok {
			src = sr
		}
		if err := m.tag(ctx, dst, s, src, c); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, m.copyAll(ctx, dst, s, region, pl.Copy, &rep)...)
	if f, ok := dst.(Finisher); ok {
		if err := f.Finish(ctx, s, pl); err != nil {
			errs = append(errs, fmt.Errorf("finish the copies in %s: %w", region, err))
		}
	}
	return rep, errors.Join(errs...)
}

// copyAll copies sources in parallel, at most MaxConcurrent in flight in
// region (across all entries), and waits for each.
func (m *Manager) copyAll(ctx context.Context, dst Cloud, s Spec, region string, sources []Resource, rep *Report) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := m.sem(region)
	for _, src := range sources {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				errs = append(errs, fmt.Errorf("copy %s to %s: %w", src.ID, region, ctx.Err()))
				mu.Unlock()
				return
			}
			defer func() { <-sem }()
			id, err := m.copyOne(ctx, dst, s, region, src)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				rep.Copied = append(rep.Copied, id)
			case id != "": // made, then failed or timed out (and deleted)
				rep.Failed = append(rep.Failed, id)
				errs = append(errs, err)
			default:
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	slices.Sort(rep.Copied)
	slices.Sort(rep.Failed)
	return errs
}

// copyOne copies src to region, tags the copy and waits for it. It returns
// the copy's id ("" if none was made); a copy that fails or times out is
// deleted.
func (m *Manager) copyOne(ctx context.Context, dst Cloud, s Spec, region string, src Resource) (string, error) {
	m.log().Info("copying", "job", s.Name, "kind", s.Kind, "source", src.ID, "from", s.SourceRegion, "to", region)
	id, err := m.startCopy(ctx, dst, s, src)
	if err != nil {
		return "", fmt.Errorf("copy %s %s from %s to %s: %w", s.Kind, src.ID, s.SourceRegion, region, err)
	}
	copied := Resource{Kind: s.Kind, ID: id, Region: region}
	if err := m.tag(ctx, dst, s, src, copied); err != nil {
		// The copy exists and carries its description: the next run tags it.
		return "", err
	}
	if err := dst.Wait(ctx, s.Kind, id, m.Timeout, m.PollMin, m.PollMax); err != nil {
		err = fmt.Errorf("copy %s of %s in %s did not complete: %w", id, src.ID, region, err)
		m.log().Error("copy failed; deleting it", "job", s.Name, "id", id, "err", err)
		if cur, derr := m.describe(ctx, dst, s.Kind, id, region); derr == nil {
			var r Report
			if derr := m.delete(ctx, dst, cur, &r); derr != nil {
				err = errors.Join(err, derr)
			}
		}
		return id, err
	}
	if s.Kind == KindImage { // its snapshots are known now: tag them too
		cur, err := m.describe(ctx, dst, s.Kind, id, region)
		if err == nil {
			err = m.tag(ctx, dst, s, src, cur)
		}
		if err != nil {
			return id, err
		}
	}
	m.log().Info("copied", "job", s.Name, "source", src.ID, "copy", id, "region", region)
	return id, nil
}

// startCopy starts the copy, retrying while the region is at its limit
// of pending copies (other tools may copy too).
func (m *Manager) startCopy(ctx context.Context, dst Cloud, s Spec, src Resource) (string, error) {
	for {
		id, err := dst.Copy(ctx, s, src, s.description(src.ID))
		if err == nil || !dst.AtCopyLimit(err) {
			return id, err
		}
		m.log().Warn("destination at its limit of pending copies; waiting", "job", s.Name, "source", src.ID)
		select {
		case <-time.After(m.pollMin()):
		case <-ctx.Done():
			return "", errors.Join(err, ctx.Err())
		}
	}
}

// clientToken is at most 64 ASCII characters, stable per entry, source and
// destination (the destination is the client's region).
func clientToken(s Spec, srcID string) string {
	t := "drkit-" + s.Name + "-" + srcID
	if len(t) > 64 {
		t = t[len(t)-64:]
	}
	return t
}

// tag tags a copy (and an image's snapshots, once known) with the entry and
// its source.
func (m *Manager) tag(ctx context.Context, api Cloud, s Spec, src Resource, r Resource) error {
	srcID, srcTime, series := src.ID, src.SourceTime(), src.Series()
	tags := map[string]string{TagJob: s.Name, TagSourceID: srcID, TagSourceRegion: s.SourceRegion,
		TagSourceTime: srcTime.UTC().Format(time.RFC3339)}
	if series != "" {
		tags[TagSeries] = series
	}
	ids := append([]string{r.ID}, r.Snapshots...)
	if err := api.Tag(ctx, ids, tags); err != nil {
		return fmt.Errorf("tag copy %s in %s (it is found again by its description next run): %w", r.ID, r.Region, err)
	}
	return nil
}

func (m *Manager) pollMin() time.Duration {
	if m.PollMin > 0 {
		return m.PollMin
	}
	return 15 * time.Second
}

func (m *Manager) describe(ctx context.Context, api Cloud, k Kind, id, region string) (Resource, error) {
	rs, err := api.List(ctx, k, Query{IDs: []string{id}})
	if err != nil {
		return Resource{}, err
	}
	if len(rs) != 1 {
		return Resource{}, fmt.Errorf("%s %s not found in %s", k, id, region)
	}
	return rs[0], nil
}
