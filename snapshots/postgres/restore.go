package postgres

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/storage"
)

// fetchAhead is how many backup chunks download in parallel ahead of the unpacker.
const fetchAhead = 4

// RestoreOptions say what to restore, from where, to where.
type RestoreOptions struct {
	Cluster string
	Region  *storage.Region // the only region read
	// Target: at most one of TargetTime and TargetLSN; neither means the newest WAL.
	TargetTime *time.Time
	TargetLSN  *pgwal.LSN
	TargetDir  string
	// RestoreCommand is written as restore_command (drctl wal-fetch against Region).
	RestoreCommand string
	Port           int // 0 keeps the backup's port
	Log            *slog.Logger
	// Progress, if set, is told the tar bytes unpacked so far and the total.
	Progress func(done, total int64)
}

// RestoreResult says what was restored.
type RestoreResult struct {
	Backup    Manifest `json:"backup"`
	TargetDir string   `json:"target_dir"`
	Owner     int      `json:"owner_uid"`
}

// Restore unpacks the newest backup before the target into TargetDir, verified,
// and writes the recovery settings that replay WAL from the region to the target.
// Start the server with Start.
func Restore(ctx context.Context, o RestoreOptions) (RestoreResult, error) {
	backups, err := ListBackups(ctx, o.Region.Pipeline, o.Cluster)
	if err != nil {
		return RestoreResult{}, err
	}
	m, err := chooseBackup(backups, o)
	if err != nil {
		return RestoreResult{}, err
	}
	uid, gid, err := prepareDir(o.TargetDir)
	if err != nil {
		return RestoreResult{}, err
	}
	o.Log.Info("restoring base backup", "cluster", o.Cluster, "region", o.Region.Name, "backup", m.ID,
		"stop_time", m.StopTime, "bytes", m.PlainSize, "to", o.TargetDir)
	if err := unpack(ctx, o, m, uid, gid); err != nil {
		return RestoreResult{}, err
	}
	if err := writePGManifest(ctx, o, m, uid, gid); err != nil {
		return RestoreResult{}, err
	}
	if err := writeRecoveryConfig(o, uid, gid); err != nil {
		return RestoreResult{}, err
	}
	return RestoreResult{Backup: m, TargetDir: o.TargetDir, Owner: uid}, nil
}

// chooseBackup picks the newest backup that ended before the target.
func chooseBackup(backups []Manifest, o RestoreOptions) (Manifest, error) {
	if len(backups) == 0 {
		return Manifest{}, fmt.Errorf("region %s holds no complete base backup of %s: %w", o.Region.Name, o.Cluster, storage.ErrNotFound)
	}
	for i := len(backups) - 1; i >= 0; i-- {
		b := backups[i]
		stop, err := pgwal.ParseLSN(b.StopLSN)
		if err != nil {
			continue
		}
		switch {
		case o.TargetTime != nil && !b.StopTime.Before(*o.TargetTime):
		case o.TargetLSN != nil && stop > *o.TargetLSN:
		default:
			return b, nil
		}
	}
	return Manifest{}, fmt.Errorf("region %s has no backup of %s that ended before the target; the oldest ended at %s (%s): %w",
		o.Region.Name, o.Cluster, backups[0].StopTime.Format(time.RFC3339), backups[0].StopLSN, storage.ErrNotFound)
}

// prepareDir makes sure dir is empty (creating it, owned like its parent, if
// missing) and returns the owner PostgreSQL will run as.
func prepareDir(dir string) (uid, gid int, err error) {
	if entries, err := os.ReadDir(dir); err == nil {
		if len(entries) > 0 {
			return 0, 0, fmt.Errorf("target folder %s is not empty: restore into a new or empty folder; nothing was changed", dir)
		}
	} else if errors.Is(err, os.ErrNotExist) {
		pfi, perr := os.Stat(filepath.Dir(dir))
		if perr != nil {
			return 0, 0, fmt.Errorf("target folder's parent: %w", perr)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return 0, 0, fmt.Errorf("create target folder: %w", err)
		}
		st := pfi.Sys().(*syscall.Stat_t)
		if err := os.Lchown(dir, int(st.Uid), int(st.Gid)); err != nil {
			return 0, 0, fmt.Errorf("chown target folder: %w", err)
		}
	} else {
		return 0, 0, fmt.Errorf("target folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return 0, 0, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), nil
}

// unpack downloads the chunks, fetchAhead at a time, verifies each and feeds
// them in order to the tar reader.
func unpack(ctx context.Context, o RestoreOptions, m Manifest, uid, gid int) error {
	g, gctx := errgroup.WithContext(ctx)
	results := make([]chan []byte, len(m.Chunks))
	for i := range results {
		results[i] = make(chan []byte, 1)
	}
	sem := make(chan struct{}, fetchAhead)
	g.Go(func() error {
		for i, obj := range m.Chunks {
			select {
			case sem <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			g.Go(func() error {
				rc, err := o.Region.Pipeline.Open(gctx, obj)
				if err != nil {
					return fmt.Errorf("backup %s chunk %d: %w", m.ID, i, err)
				}
				defer rc.Close()
				data, err := io.ReadAll(rc)
				if err != nil {
					return fmt.Errorf("backup %s chunk %d: %w", m.ID, i, err)
				}
				results[i] <- data
				return nil
			})
		}
		return nil
	})
	pr, pw := io.Pipe()
	g.Go(func() error {
		for i := range m.Chunks {
			select {
			case data := <-results[i]:
				<-sem
				if _, err := pw.Write(data); err != nil {
					return err
				}
			case <-gctx.Done():
				pw.CloseWithError(gctx.Err())
				return gctx.Err()
			}
		}
		return pw.Close()
	})
	g.Go(func() error {
		err := extract(pr, o.TargetDir, uid, gid, m.PlainSize, o.Progress)
		pr.CloseWithError(err)
		return err
	})
	return g.Wait()
}

// extract unpacks a tar stream into dir, owned by uid:gid.
func extract(r io.Reader, dir string, uid, gid int, total int64, progress func(done, total int64)) error {
	tr := tar.NewReader(r)
	var done int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read backup archive: %w", err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("backup archive entry %q points outside the target folder", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeEntry(p, tr, h); err != nil {
				return err
			}
			done += h.Size
			if progress != nil {
				progress(done, total)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		default:
			continue
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		if h.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(p, os.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
		}
	}
}

func writeEntry(p string, r io.Reader, h *tar.Header) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("restore %s: %w", h.Name, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("restore %s: %w", h.Name, err)
	}
	return f.Close()
}

// writePGManifest puts PostgreSQL's backup_manifest in the folder so that
// pg_verifybackup can check the restored files.
func writePGManifest(ctx context.Context, o RestoreOptions, m Manifest, uid, gid int) error {
	rc, err := o.Region.Pipeline.Open(ctx, m.BackupManifest)
	if err != nil {
		return fmt.Errorf("backup %s: backup_manifest: %w", m.ID, err)
	}
	defer rc.Close()
	p := filepath.Join(o.TargetDir, "backup_manifest")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("backup %s: backup_manifest: %w", m.ID, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chown(p, uid, gid)
}

// writeRecoveryConfig appends the recovery settings to postgresql.auto.conf and
// creates recovery.signal. It also unties the copy from the old host: its port,
// socket folder, archiving and any replication source.
func writeRecoveryConfig(o RestoreOptions, uid, gid int) error {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	lines := []string{
		"",
		"# Written by drkit restore (" + time.Now().UTC().Format(time.RFC3339) + ")",
		"restore_command = " + q(o.RestoreCommand),
		"recovery_target_action = 'promote'",
		"recovery_target_timeline = 'latest'",
		"archive_mode = 'off'",
		"archive_command = ''",
		"primary_conninfo = ''",
		"primary_slot_name = ''",
		"unix_socket_directories = " + q(o.TargetDir),
	}
	switch {
	case o.TargetTime != nil:
		lines = append(lines, "recovery_target_time = "+q(o.TargetTime.UTC().Format("2006-01-02 15:04:05.999999-07:00")))
	case o.TargetLSN != nil:
		lines = append(lines, "recovery_target_lsn = "+q(o.TargetLSN.String()))
	}
	if o.Port > 0 {
		lines = append(lines, fmt.Sprintf("port = %d", o.Port))
	}
	auto := filepath.Join(o.TargetDir, "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	signal := filepath.Join(o.TargetDir, "recovery.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return err
	}
	for _, p := range []string{auto, signal} {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}
