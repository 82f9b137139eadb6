package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	mywal "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
	"github.com/drkit/drkit/storage"
)

// The MySQL/MariaDB halves of the engine-neutral commands (backup, backups,
// restore, verify, status, prune): each command resolves the cluster and calls
// these when its engine is mysql.

func mysqlBackup(cmd *cobra.Command, g *globals, cfg *config.Config, cl config.Cluster) error {
	regions, err := shipToRegions(cmd.Context(), cfg, cl)
	if err != nil {
		return err
	}
	progress, finish := g.countBar("backup rows", false)
	o := mysnap.BackupOptions{Cluster: cl.Name, DSN: cl.DSN, Regions: regions, Log: g.log()}
	if progress != nil {
		o.Progress = func(n int64) { progress(n, -1) }
	}
	m, err := mysnap.Backup(cmd.Context(), o)
	finish()
	if err != nil {
		return err
	}
	if g.json {
		return g.printJSON(m)
	}
	_, err = fmt.Fprintln(g.stdout, m.ID)
	return err
}

func shipToRegions(ctx context.Context, cfg *config.Config, cl config.Cluster) ([]*storage.Region, error) {
	var regions []*storage.Region
	for _, name := range cl.ShipTo {
		r, err := storage.OpenRegion(ctx, cfg, name, storage.RegionOptions{})
		if err != nil {
			return nil, err
		}
		regions = append(regions, r)
	}
	return regions, nil
}

func mysqlBackups(g *globals, ctx context.Context, r *storage.Region, cl config.Cluster) error {
	list, damaged, err := mysnap.ListBackups(ctx, r.Pipeline, cl.Name)
	if err != nil {
		return err
	}
	warnDamaged(g, r.Name, damaged)
	if g.json {
		return printList(g, list)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSNAPSHOT\tGTID POSITION\tROWS\tSIZE\tSTORED")
	for _, m := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", m.ID, m.SnapshotTime.Format(time.RFC3339), m.GTIDPos, m.Rows, m.PlainSize, m.StoredSize)
	}
	return tw.Flush()
}

type mysqlRestoreFlags struct {
	targetTime, targetGTID, targetDSN, listen, backupID, passwordFile string
	noReplay, acceptGap                                               bool
}

func mysqlRestore(cmd *cobra.Command, g *globals, cf *clusterFlags, cfg *config.Config, cl config.Cluster, f mysqlRestoreFlags) error {
	if f.targetDSN == "" {
		return usageErr(errors.New("--target-dsn is required for a MySQL cluster: the empty server to restore into (user:password@tcp(host:3306)/)"))
	}
	if f.targetTime != "" && f.targetGTID != "" {
		return usageErr(errors.New("give --target-time or --target-gtid, not both"))
	}
	dsn, err := withPassword("mysql", f.targetDSN, f.passwordFile)
	if err != nil {
		return err
	}
	o := mysnap.RestoreOptions{Cluster: cl.Name, TargetDSN: dsn, ReplayListen: f.listen, NoReplay: f.noReplay, Log: g.log(),
		BackupID: f.backupID, AcceptGap: f.acceptGap}
	if f.targetTime != "" {
		t, err := parseTargetTime(f.targetTime)
		if err != nil {
			return err
		}
		o.Stop.Time = t
	}
	if f.targetGTID != "" {
		gt, err := mywal.ParseGTID(f.targetGTID)
		if err != nil {
			return usageErr(fmt.Errorf("--target-gtid: %w", err))
		}
		o.Stop.GTID = &gt
	}
	if o.Region, err = cf.openRegion(cmd.Context(), cfg, cl, true); err != nil {
		return err
	}
	progress, finish := g.countBar("rows loaded", false)
	if progress != nil {
		o.Progress = func(n int64) { progress(n, -1) }
	}
	res, err := mysnap.Restore(cmd.Context(), o)
	finish()
	if err != nil {
		return notFoundOr(err)
	}
	if g.json {
		return g.printJSON(res)
	}
	fmt.Fprintf(g.stdout, "restored backup %s of %s from region %s and replayed %d transaction(s); the server is at GTID %s\n",
		res.Backup.ID, cl.Name, o.Region.Name, res.Replayed, res.GTIDPos)
	if res.Last != nil {
		fmt.Fprintf(g.stdout, "last transaction: %s committed at %s\n", res.Last.GTID, res.Last.Time.Format(time.RFC3339))
	}
	if res.Reach != nil && res.Reach.Gap != "" {
		fmt.Fprintf(g.stdout, "WARNING: --accept-gap: %s; the replay stopped at %s, and the binlog stored after the gap (to %s) was not replayed\n", res.Reach.Gap, res.Reach.End, res.Reach.Beyond)
	}
	return nil
}

// mysqlVerifyReport is drctl verify's answer for a MySQL cluster.
type mysqlVerifyReport struct {
	Cluster  string             `json:"cluster"`
	Region   string             `json:"region"`
	Binlog   mywal.VerifyReport `json:"binlog"`
	Backups  []string           `json:"backups"`
	Problems []string           `json:"problems"`
	OK       bool               `json:"ok"`
}

func mysqlVerify(g *globals, ctx context.Context, r *storage.Region, cl config.Cluster) error {
	rep := mysqlVerifyReport{Cluster: cl.Name, Region: r.Name}
	var err error
	if rep.Binlog, err = mywal.Verify(ctx, &mywal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}); err != nil {
		return err
	}
	rep.Problems = append(rep.Problems, rep.Binlog.Problems...)
	backups, damaged, err := mysnap.ListBackups(ctx, r.Pipeline, cl.Name)
	if err != nil {
		return err
	}
	for _, d := range damaged {
		rep.Problems = append(rep.Problems, "damaged backup manifest "+d.String())
	}
	for _, b := range backups {
		rep.Backups = append(rep.Backups, b.ID)
		pos, err := mywal.ParsePos(b.GTIDPos)
		if err == nil {
			err = rep.Binlog.Covers(pos)
		}
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s (GTID %s) cannot be rolled forward: %v", b.ID, b.GTIDPos, err))
		}
	}
	if len(backups) == 0 {
		rep.Problems = append(rep.Problems, "the region holds no complete backup")
	}
	rep.OK = len(rep.Problems) == 0
	if g.json {
		if err := g.printJSON(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.stdout, "cluster %s in region %s: %d binlog chunk(s), %d transaction(s), GTID %s .. %s, last commit %s; %d backup(s)\n",
			cl.Name, r.Name, rep.Binlog.Chunks, rep.Binlog.Txns, rep.Binlog.First, rep.Binlog.End, rep.Binlog.LastTime.Format(time.RFC3339), len(backups))
		for _, p := range rep.Problems {
			fmt.Fprintln(g.stdout, "PROBLEM:", p)
		}
		if rep.OK {
			fmt.Fprintln(g.stdout, "OK: every backup rolls forward to the newest binlog, every checksum matches")
		}
	}
	if !rep.OK {
		return fmt.Errorf("region %s: %d problem(s) found", r.Name, len(rep.Problems))
	}
	return nil
}

// mysqlStatus is one region's row of drctl status for a MySQL cluster.
type mysqlStatus struct {
	Cluster    string    `json:"cluster"`
	Engine     string    `json:"engine"`
	Region     string    `json:"region"`
	GTIDPos    string    `json:"gtid_pos,omitempty"`
	LastCommit time.Time `json:"last_commit_time,omitzero"`
	LastBackup string    `json:"last_backup,omitempty"`
	Error      string    `json:"error,omitempty"`
}

func mysqlRegionStatus(ctx context.Context, r *storage.Region, cl config.Cluster) mysqlStatus {
	s := mysqlStatus{Cluster: cl.Name, Engine: "mysql", Region: r.Name}
	end, last, gap, ok, err := (&mywal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}).DurableEnd(ctx)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	if ok {
		s.GTIDPos, s.LastCommit = end.String(), last
	}
	if gap != "" {
		s.Error = "binlog gap: " + gap + "; the binlog after it cannot be replayed"
	}
	if list, damaged, err := mysnap.ListBackups(ctx, r.Pipeline, cl.Name); err != nil {
		s.Error = err.Error()
	} else {
		if len(list) > 0 {
			s.LastBackup = list[len(list)-1].ID
		}
		if note := snapshots.DamagedNote(damaged); note != "" {
			s.Error = joinNote(s.Error, note)
		}
	}
	return s
}

func mysqlPrune(g *globals, ctx context.Context, r *storage.Region, cl config.Cluster, dryRun bool) (any, error) {
	res, err := mysnap.Prune(ctx, r.Pipeline, cl.Name, cl.Retention, time.Now(), dryRun)
	if err != nil {
		return nil, err
	}
	if !g.json {
		verb := "expired"
		if dryRun {
			verb = "would expire"
		}
		fmt.Fprintf(g.stdout, "region %s: kept %d backup(s); %s %v and %d binlog chunk(s)\n", res.Region, len(res.Kept), verb, res.Expired, res.BinlogChunks)
	}
	return res, nil
}
