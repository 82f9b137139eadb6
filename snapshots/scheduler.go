package snapshots

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/metrics"
	"github.com/drkit/drkit/snapshots/schedule"
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
// base_backup.schedule through the schedule engine (run records and a lease
// in the jobs region, catch-up, jitter; a run still going is not started
// again), retention after each and every hour, and the backup metrics every
// minute.
type Scheduler struct {
	Cluster config.Cluster
	Regions []*storage.Region // the cluster's ship_to regions
	Engine  Engine
	Metrics *BackupMetrics
	Log     *slog.Logger
	// Jobs runs the scheduled backups and keeps their records (drd's runner
	// on the jobs region); required when the cluster has a schedule.
	Jobs *schedule.Runner

	running sync.Mutex
}

// KindBaseBackup is the kind of scheduled base backup jobs.
const KindBaseBackup = "base-backup"

// DescribeBackup returns a cluster's scheduled backup job without its Run.
func DescribeBackup(cl config.Cluster) CopyJob {
	return CopyJob{Cluster: cl.Name, From: cl.Region, To: strings.Join(cl.ShipTo, ","),
		Job: schedule.Job{Name: "backup-" + cl.Name, Kind: KindBaseBackup, Spec: cl.BaseBackup.Job}}
}

// Described returns the config's scheduled jobs (base backups and backup-set
// copies) without their Run, for status; image and snapshot jobs are
// snapshots/ec2's.
func Described(cfg *config.Config) []CopyJob {
	var out []CopyJob
	for _, cl := range cfg.Clusters {
		if cl.BaseBackup.Schedule != "" {
			out = append(out, DescribeBackup(cl))
		}
	}
	for _, cp := range cfg.Copies {
		out = append(out, DescribeCopy(cp))
	}
	return out
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
	if s.Cluster.BaseBackup.Schedule != "" {
		if s.Jobs == nil {
			return errors.New("scheduler of " + s.Cluster.Name + ": a schedule needs the jobs runner")
		}
		job := DescribeBackup(s.Cluster).Job
		job.Run = s.scheduled
		done := make(chan error, 1)
		go func() { done <- s.Jobs.Run(ctx, []schedule.Job{job}) }()
		defer func() { <-done }()
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

// scheduled takes one scheduled backup, unless one (on demand) is running:
// the run is then recorded as failed with ErrBackupRunning.
func (s *Scheduler) scheduled(ctx context.Context) (schedule.Result, error) {
	if !s.running.TryLock() {
		return schedule.Result{}, ErrBackupRunning
	}
	defer s.running.Unlock()
	id, err := s.run(ctx)
	if err != nil {
		return schedule.Result{}, err
	}
	return schedule.Result{Detail: "backup " + id}, nil
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
