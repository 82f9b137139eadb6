package snapshots

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/metrics"
	"github.com/drkit/drkit/storage"
)

// BackupMetrics are the backup facts drd exports, read from the stores so that
// backups taken by drctl count as well as drd's own.
type BackupMetrics struct {
	last, duration, size *prometheus.GaugeVec
	errors               *prometheus.CounterVec
}

// NewBackupMetrics registers the backup gauges on reg.
func NewBackupMetrics(reg prometheus.Registerer) *BackupMetrics {
	gauge := func(name, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"cluster", "engine", "region"})
		reg.MustRegister(g)
		return g
	}
	return &BackupMetrics{
		last:     gauge("drkit_backup_last_success_timestamp_seconds", "When the region's newest complete base backup ended (Unix time)."),
		duration: gauge("drkit_backup_duration_seconds", "How long the region's newest base backup took."),
		size:     gauge("drkit_backup_size_bytes", "Size of the region's newest base backup before compression."),
		errors:   metrics.ErrorsTotal(reg),
	}
}

// Engine is what the scheduler needs from an engine's snapshot package.
type Engine interface {
	// Name is the engine label of the metrics ("postgres", "mysql").
	Name() string
	// Backup takes one base backup into every region and returns its id.
	Backup(ctx context.Context) (id string, err error)
	// Prune applies the cluster's retention to one region.
	Prune(ctx context.Context, r *storage.Region, now time.Time) (PruneSummary, error)
	// List describes the region's complete backups, oldest first.
	List(ctx context.Context, r *storage.Region) ([]Summary, error)
}

// Summary describes one complete backup.
type Summary struct {
	ID    string    `json:"id"`
	Start time.Time `json:"start"`
	Stop  time.Time `json:"stop"`
	Size  int64     `json:"size"`
}

// PruneSummary is what retention removed from a region.
type PruneSummary struct {
	Expired    []string
	LogObjects int
}

// Scheduler is drd's backup component for one cluster: base backups on
// base_backup.schedule (a run still going is not started again), retention
// after each and every hour, and the backup metrics every minute.
type Scheduler struct {
	Cluster config.Cluster
	Regions []*storage.Region // the cluster's ship_to regions
	Engine  Engine
	Metrics *BackupMetrics
	Log     *slog.Logger

	running sync.Mutex
}

// Name implements drd's component interface.
func (s *Scheduler) Name() string { return "backups/" + s.Cluster.Name }

// Run schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	// Counters exist at 0 from the start: an alert on their increase then
	// fires on the first failure, and "absent" means "drd is not running".
	s.Metrics.errors.WithLabelValues(s.Cluster.Name, "", "backup")
	for _, r := range s.Regions {
		s.Metrics.errors.WithLabelValues(s.Cluster.Name, r.Name, "retention")
	}
	c := cron.New()
	if spec := s.Cluster.BaseBackup.Schedule; spec != "" {
		if _, err := c.AddFunc(spec, func() { s.backup(ctx) }); err != nil {
			return err
		}
		c.Start()
		defer func() { <-c.Stop().Done() }()
	}
	s.refresh(ctx)
	refresh, prune := time.NewTicker(time.Minute), time.NewTicker(time.Hour)
	defer refresh.Stop()
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			s.refresh(ctx)
		case <-prune.C:
			s.prune(ctx)
		}
	}
}

// backup takes one scheduled backup, unless the previous one still runs.
func (s *Scheduler) backup(ctx context.Context) {
	if !s.running.TryLock() {
		s.Log.Warn("scheduled base backup skipped: the previous one is still running", "cluster", s.Cluster.Name)
		return
	}
	defer s.running.Unlock()
	if _, err := s.run(ctx); err != nil && ctx.Err() == nil {
		s.Log.Error("scheduled base backup failed", "cluster", s.Cluster.Name, "err", err)
	}
}

// ErrBackupRunning is BackupNow's answer while another backup of the cluster runs.
var ErrBackupRunning = errors.New("a base backup of this cluster is already running")

// BackupNow takes a backup on demand (drd's API), unless one is running.
func (s *Scheduler) BackupNow(ctx context.Context) (string, error) {
	if !s.running.TryLock() {
		return "", ErrBackupRunning
	}
	defer s.running.Unlock()
	return s.run(ctx)
}

// run takes a backup, then applies retention and refreshes the metrics.
func (s *Scheduler) run(ctx context.Context) (string, error) {
	id, err := s.Engine.Backup(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.Metrics.errors.WithLabelValues(s.Cluster.Name, "", "backup").Inc()
		}
		return "", err
	}
	s.Log.Info("base backup complete", "cluster", s.Cluster.Name, "backup", id)
	s.prune(ctx)
	s.refresh(ctx)
	return id, nil
}

func (s *Scheduler) prune(ctx context.Context) {
	for _, r := range s.Regions {
		res, err := s.Engine.Prune(ctx, r, time.Now())
		if err != nil {
			if ctx.Err() == nil {
				s.Log.Error("retention failed", "cluster", s.Cluster.Name, "region", r.Name, "err", err)
				s.Metrics.errors.WithLabelValues(s.Cluster.Name, r.Name, "retention").Inc()
			}
			continue
		}
		if len(res.Expired) > 0 {
			s.Log.Info("retention expired backups", "cluster", s.Cluster.Name, "region", r.Name, "backups", res.Expired, "log_objects", res.LogObjects)
		}
	}
}

// refresh sets the backup gauges from what each region holds.
func (s *Scheduler) refresh(ctx context.Context) {
	for _, r := range s.Regions {
		list, err := s.Engine.List(ctx, r)
		if err != nil || len(list) == 0 {
			continue
		}
		b := list[len(list)-1]
		l := []string{s.Cluster.Name, s.Engine.Name(), r.Name}
		s.Metrics.last.WithLabelValues(l...).Set(float64(b.Stop.UnixNano()) / 1e9)
		s.Metrics.duration.WithLabelValues(l...).Set(b.Stop.Sub(b.Start).Seconds())
		s.Metrics.size.WithLabelValues(l...).Set(float64(b.Size))
	}
}
