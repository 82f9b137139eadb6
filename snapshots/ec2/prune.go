package ec2

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Prune deletes the copies in region that the plan deletes: expired ones,
// failed ones and ones pending past the timeout. An image is deregistered
// and its snapshots deleted unless another registered image uses them; a
// snapshot a registered image uses is never deleted (Report.Spared). With
// dryRun it reports what it would delete.
func (m *Manager) Prune(ctx context.Context, s Spec, region string, dryRun bool) (Report, error) {
	pl, err := m.PlanFor(ctx, s, region)
	rep := Report{Region: region, Plan: pl, Copied: []string{}, Deleted: []string{}, Failed: []string{}}
	if err != nil {
		return rep, err
	}
	api, err := m.cloud(ctx, s, region)
	if err != nil {
		return rep, err
	}
	return rep, m.deleteAll(ctx, api, region, pl.Delete, &rep, dryRun)
}

// deleteAll deletes ds in region, reporting each in rep.
func (m *Manager) deleteAll(ctx context.Context, api Cloud, region string, ds []Deletion, rep *Report, dryRun bool) error {
	if len(ds) == 0 {
		return nil
	}
	images, err := api.List(ctx, KindImage, Query{})
	if err != nil {
		return fmt.Errorf("list the images that may use snapshots: %w", err)
	}
	going := map[string]bool{}
	for _, d := range ds {
		if d.Kind == KindImage {
			going[d.ID] = true
		}
	}
	// usedBy names a registered image, other than those being deregistered,
	// that uses snapshot id.
	usedBy := func(id string) string {
		for _, im := range images {
			if !going[im.ID] && slices.Contains(im.Snapshots, id) {
				return im.ID
			}
		}
		return ""
	}
	var errs []error
	for _, d := range ds {
		m.log().Info("deleting", "kind", d.Kind, "id", d.ID, "region", region, "reason", d.Reason, "dry_run", dryRun)
		if d.Kind == KindImage {
			errs = append(errs, m.deregister(ctx, api, d.Resource, usedBy, rep, dryRun))
			continue
		}
		if im := usedBy(d.ID); im != "" {
			rep.Spared = append(rep.Spared, d.ID)
			m.log().Info("kept: a registered image uses it", "snapshot", d.ID, "image", im)
			continue
		}
		errs = append(errs, m.deleteSnapshot(ctx, api, d.Resource, rep, dryRun))
	}
	return errors.Join(errs...)
}

func (m *Manager) deregister(ctx context.Context, api Cloud, im Resource, usedBy func(string) string, rep *Report, dryRun bool) error {
	if !dryRun {
		if err := api.Deregister(ctx, im.ID); err != nil {
			return fmt.Errorf("deregister image %s in %s: %w", im.ID, im.Region, err)
		}
	}
	rep.Deleted = append(rep.Deleted, im.ID)
	var errs []error
	for _, sid := range im.Snapshots {
		if other := usedBy(sid); other != "" {
			rep.Spared = append(rep.Spared, sid)
			m.log().Info("kept: another image uses it", "snapshot", sid, "image", other)
			continue
		}
		errs = append(errs, m.deleteSnapshot(ctx, api, Resource{Kind: KindSnapshot, ID: sid, Region: im.Region}, rep, dryRun))
	}
	return errors.Join(errs...)
}

func (m *Manager) deleteSnapshot(ctx context.Context, api Cloud, sn Resource, rep *Report, dryRun bool) error {
	if !dryRun {
		if err := api.DeleteSnapshot(ctx, sn.ID); err != nil {
			return fmt.Errorf("delete snapshot %s in %s: %w", sn.ID, sn.Region, err)
		}
	}
	rep.Deleted = append(rep.Deleted, sn.ID)
	return nil
}

// delete removes one failed or timed-out copy.
func (m *Manager) delete(ctx context.Context, api Cloud, r Resource, rep *Report) error {
	rep.Failed = append(rep.Failed, r.ID)
	return m.deleteAll(ctx, api, r.Region, []Deletion{{r, "failed"}}, rep, false)
}
