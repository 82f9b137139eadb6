package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// RegionStatus is what one region holds of a cluster, as `drctl status` shows.
type RegionStatus struct {
	Cluster  string `json:"cluster"`
	Region   string `json:"region"`
	Timeline uint32 `json:"timeline,omitempty"`
	// DurableLSN is the end of the WAL the region holds without a gap, and
	// DurableTime when its newest WAL object was written.
	DurableLSN  string    `json:"durable_lsn,omitempty"`
	DurableTime time.Time `json:"durable_time,omitzero"`
	// LagBytes and LagSeconds compare with the primary; absent when it could not
	// be asked.
	LagBytes   *int64   `json:"lag_bytes,omitempty"`
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	LastBackup *struct {
		ID       string    `json:"id"`
		StopTime time.Time `json:"stop_time"`
		Size     int64     `json:"size"`
	} `json:"last_backup,omitempty"`
	Error string `json:"error,omitempty"`
}

// Status reads a region's facts for cluster; primary is the primary's current
// WAL position, or nil when it is unreachable. The durable position is where
// a replay from the newest backup (or, without one, from the oldest WAL) stops:
// WAL stored past a gap is not counted, and the gap is named in Error.
func Status(ctx context.Context, p *storage.Pipeline, cluster string, primary *pgwal.LSN, now time.Time) RegionStatus {
	st := RegionStatus{Cluster: cluster, Region: p.Region}
	cat := &pgwal.Catalog{Pipeline: p, Cluster: cluster}
	info, err := cat.ReadInfo(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		st.Error = "no WAL or backup of this cluster yet"
		return st
	}
	if err != nil {
		st.Error = err.Error()
		return st
	}
	backups, damaged, err := ListBackups(ctx, p, cluster)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Error = snapshots.DamagedNote(damaged)
	if n := len(backups); n > 0 {
		b := backups[n-1]
		st.LastBackup = &struct {
			ID       string    `json:"id"`
			StopTime time.Time `json:"stop_time"`
			Size     int64     `json:"size"`
		}{b.ID, b.StopTime, b.PlainSize}
	}
	objs, err := cat.List(ctx, info.WALSegmentSize)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	lineage, err := cat.Lineage(ctx, objs)
	if err != nil || len(lineage) == 0 {
		if err != nil {
			st.Error = err.Error()
		}
		return st
	}
	st.Timeline = lineage[len(lineage)-1].TLI
	r, ok := statusReach(objs, lineage, backups, info.WALSegmentSize)
	if !ok {
		return st
	}
	st.DurableLSN, st.DurableTime = r.End.String(), r.EndTime
	if r.Gap != "" {
		note := fmt.Sprintf("WAL gap: segment %s is missing; the WAL stored after it (to %s) cannot be replayed", r.Gap, r.Beyond)
		if st.Error != "" {
			note = st.Error + "; " + note
		}
		st.Error = note
	}
	if primary != nil {
		lag := max(int64(*primary)-int64(r.End), 0)
		secs := 0.0
		if lag > 0 {
			secs = now.Sub(st.DurableTime).Seconds()
		}
		st.LagBytes, st.LagSeconds = &lag, &secs
	}
	return st
}

// statusReach is the reach of a replay from the newest backup, or from the
// oldest WAL on the lineage when there is no backup.
func statusReach(objs []pgwal.WALObject, lineage []pgwal.TimelineBegin, backups []Manifest, segSize uint64) (pgwal.Reach, bool) {
	var from pgwal.LSN
	if n := len(backups); n > 0 {
		b := backups[n-1]
		pos := b.StartLSN
		if b.WALIncluded {
			pos = b.StopLSN
		}
		from, _ = pgwal.ParseLSN(pos)
	} else {
		first := true
		for _, w := range objs {
			if !w.History && w.Segment.TLI == pgwal.TimelineOf(lineage, w.Segment.No, segSize) && (first || w.Segment.Start(segSize) < from) {
				from, first = w.Segment.Start(segSize)+pgwal.LSN(w.From), false
			}
		}
		if first {
			return pgwal.Reach{}, false
		}
	}
	r := pgwal.ReachFrom(objs, lineage, from, segSize)
	if !r.Reached && len(backups) > 0 {
		b := backups[len(backups)-1]
		r.End, _ = pgwal.ParseLSN(b.StopLSN)
		r.EndTime = b.StopTime
		return r, true
	}
	return r, r.Reached
}
