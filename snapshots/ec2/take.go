package ec2

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/smithy-go"
)

// Take snapshots the volumes tagged with the entry's VolumeTags in its
// source region, tags the snapshots as taken by the entry, and prunes the
// ones it took before by the same retention (per volume). It returns the new
// snapshots' ids; with dryRun, the volumes it would snapshot.
func (m *Manager) Take(ctx context.Context, s Spec, dryRun bool) ([]string, Report, error) {
	rep := Report{Region: s.SourceRegion, Copied: []string{}, Deleted: []string{}, Failed: []string{}}
	api, err := m.cloud(ctx, s, s.SourceRegion)
	if err != nil {
		return nil, rep, err
	}
	vols, err := api.Volumes(ctx, s.VolumeTags)
	if err != nil {
		return nil, rep, err
	}
	if len(vols) == 0 {
		return nil, rep, fmt.Errorf("no volume in %s has the tags %v of %s's create.volume_tags", s.SourceRegion, s.VolumeTags, s.Name)
	}
	if dryRun {
		return vols, rep, nil
	}
	var ids []string
	var errs []error
	for _, v := range vols {
		id, err := api.Snapshot(ctx, v, fmt.Sprintf("drkit:%s snapshot of %s at %s", s.Name, v, m.now().UTC().Format(time.RFC3339)),
			map[string]string{TagTakenBy: s.Name})
		if err != nil {
			errs = append(errs, fmt.Errorf("snapshot volume %s in %s: %w", v, s.SourceRegion, err))
			continue
		}
		ids = append(ids, id)
		m.log().Info("snapshot taken", "job", s.Name, "volume", v, "snapshot", id)
	}
	rep.Copied = ids
	taken, err := api.List(ctx, KindSnapshot, Query{Tags: map[string]string{TagTakenBy: s.Name}})
	if err != nil {
		return ids, rep, errors.Join(append(errs, err)...)
	}
	pl := m.planner(s).Plan(s.SourceRegion, nil, taken)
	errs = append(errs, m.deleteAll(ctx, api, s.SourceRegion, pl.Delete, &rep, false))
	return ids, rep, errors.Join(errs...)
}

// waitTaken waits for the entry's taken snapshots still pending, so that a
// copy run right after Take copies them.
func (m *Manager) waitTaken(ctx context.Context, s Spec) error {
	api, err := m.cloud(ctx, s, s.SourceRegion)
	if err != nil {
		return err
	}
	pending, err := api.List(ctx, KindSnapshot, Query{Tags: map[string]string{TagTakenBy: s.Name}, Pending: true})
	if err != nil {
		return err
	}
	for _, sn := range pending {
		if err := api.Wait(ctx, KindSnapshot, sn.ID, m.Timeout, m.PollMin, m.PollMax); err != nil {
			m.log().Warn("a taken snapshot did not complete; copying the others", "snapshot", sn.ID, "err", err)
		}
	}
	return nil
}

// notFound reports whether err is EC2's "does not exist" (already gone).
func notFound(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && strings.HasSuffix(ae.ErrorCode(), ".NotFound")
}
