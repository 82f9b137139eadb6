package postgres

import (
	"context"
	"errors"
	"time"

	pgwal "github.com/drkit/drkit/binlog/postgres"
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
// WAL position, or nil when it is unreachable.
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
	objs, err := cat.List(ctx, info.WALSegmentSize)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	lineage, err := cat.Lineage(ctx, objs)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	if len(lineage) > 0 {
		st.Timeline = lineage[len(lineage)-1].TLI
		if end, ok := pgwal.DurableEnd(objs, st.Timeline, info.WALSegmentSize); ok {
			st.DurableLSN = end.String()
			for _, w := range objs {
				if !w.History && w.Segment.TLI == st.Timeline && w.ModTime.After(st.DurableTime) {
					st.DurableTime = w.ModTime
				}
			}
			if primary != nil {
				lag := max(int64(*primary)-int64(end), 0)
				secs := 0.0
				if lag > 0 {
					secs = now.Sub(st.DurableTime).Seconds()
				}
				st.LagBytes, st.LagSeconds = &lag, &secs
			}
		}
	}
	backups, err := ListBackups(ctx, p, cluster)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	if n := len(backups); n > 0 {
		b := backups[n-1]
		st.LastBackup = &struct {
			ID       string    `json:"id"`
			StopTime time.Time `json:"stop_time"`
			Size     int64     `json:"size"`
		}{b.ID, b.StopTime, b.PlainSize}
	}
	return st
}
