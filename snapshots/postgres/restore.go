package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// fetchAhead is how many backup chunks download and decode ahead of the
// unpacker: one per core keeps them busy; more only adds memory (measured on a
// 0.9 GB restore: 2 in flight 255 MiB RSS, 4 in flight 340 MiB and no faster).
var fetchAhead = max(2, runtime.GOMAXPROCS(0))

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
	// Standby, if set, makes the folder a standby that keeps replaying (no
	// target, standby.signal instead of recovery.signal).
	Standby *Standby
	// BackupID restores that backup instead of the newest before the target.
	BackupID string
	// AcceptGap restores to the newest WAL before a gap instead of refusing.
	AcceptGap bool
}

// Standby configures a restored folder as a standby: it replays WAL from the
// region (restore_command) and, with PrimaryConnInfo, streams from the
// primary once it has caught up with the region.
type Standby struct {
	// PrimaryConnInfo is the libpq connection string of the primary; "" makes
	// a standby that replays from the region's store only.
	PrimaryConnInfo string
	// Slot is the primary's physical slot the standby streams from.
	Slot string
}

// RestoreResult says what was restored.
type RestoreResult struct {
	Backup    Manifest `json:"backup"`
	TargetDir string   `json:"target_dir"`
	Owner     int      `json:"owner_uid"`
	// Reach is how far the region's WAL replays from the backup.
	Reach pgwal.Reach `json:"reach"`
	// Skipped are the region's manifests that could not be read: newer
	// backups among them were passed over.
	Skipped []snapshots.Damaged `json:"skipped,omitempty"`
}

// ErrGap is wrapped by a restore refused because the region's WAL has a gap
// before the target (or, with no target, before its newest WAL).
var ErrGap = snapshots.ErrGap

// Restore unpacks the newest backup before the target into TargetDir, verified,
// and writes the recovery settings that replay WAL from the region to the target.
// Before it writes anything it checks that the region's WAL reaches the target
// from that backup without a gap: a replay that stops early would hand back a
// silently partial database. Start the server with Start.
func Restore(ctx context.Context, o RestoreOptions) (RestoreResult, error) {
	res, err := PlanRestore(ctx, o)
	if err != nil {
		return res, err
	}
	m := res.Backup
	uid, gid, err := prepareDir(o.TargetDir)
	if err != nil {
		return res, err
	}
	res.TargetDir, res.Owner = o.TargetDir, uid // written from here on
	o.Log.Info("restoring base backup", "cluster", o.Cluster, "region", o.Region.Name, "backup", m.ID,
		"stop_time", m.StopTime, "bytes", m.PlainSize, "to", o.TargetDir)
	if err := unpack(ctx, o, m, uid, gid); err != nil {
		return res, err
	}
	if err := writePGManifest(ctx, o, m, uid, gid); err != nil {
		return res, err
	}
	if err := writeRecoveryConfig(o, uid, gid); err != nil {
		return res, err
	}
	return res, nil
}

// PlanRestore chooses the backup and checks that the region's WAL reaches the
// target from it, reading only listings and manifests.
func PlanRestore(ctx context.Context, o RestoreOptions) (RestoreResult, error) {
	var res RestoreResult
	backups, damaged, err := ListBackups(ctx, o.Region.Pipeline, o.Cluster)
	if err != nil {
		return res, err
	}
	res.Skipped = damaged
	for _, d := range damaged {
		o.Log.Warn("skipping a damaged backup manifest", "region", o.Region.Name, "manifest", d.Key, "problem", d.Problem)
	}
	if res.Backup, err = chooseBackup(backups, damaged, o); err != nil {
		return res, err
	}
	if res.Reach, err = reachFrom(ctx, o.Region.Pipeline, o.Cluster, res.Backup); err != nil {
		return res, err
	}
	return res, checkReach(o, res.Backup, res.Reach)
}

// reachFrom says how far the region's WAL replays from backup m: from its stop
// position when it carries its own WAL (the archive holds start to stop).
func reachFrom(ctx context.Context, p *storage.Pipeline, cluster string, m Manifest) (pgwal.Reach, error) {
	cat := &pgwal.Catalog{Pipeline: p, Cluster: cluster}
	objs, err := cat.List(ctx, m.WALSegmentSize)
	if err != nil {
		return pgwal.Reach{}, err
	}
	lineage, err := cat.Lineage(ctx, objs)
	if err != nil {
		return pgwal.Reach{}, fmt.Errorf("region %s: timeline history: %w", p.Region, err)
	}
	from := m.StartLSN
	if m.WALIncluded {
		from = m.StopLSN
	}
	lsn, _ := pgwal.ParseLSN(from) // checked with the manifest
	if len(lineage) == 0 {
		lineage = []pgwal.TimelineBegin{{TLI: m.Timeline}}
	}
	r := pgwal.ReachFrom(objs, lineage, lsn, m.WALSegmentSize)
	if !r.Reached {
		r.EndTime = m.StopTime
	}
	return r, nil
}

// checkReach refuses a target the region's WAL cannot reach from backup m:
// beyond its newest WAL (ErrNotFound: nothing there to restore) or beyond a
// gap (ErrGap, unless AcceptGap and there is no target: the restore then
// stops at the gap, and says so).
func checkReach(o RestoreOptions, m Manifest, r pgwal.Reach) error {
	stop, _ := pgwal.ParseLSN(m.StopLSN)
	reach := fmt.Sprintf("from backup %s the region's WAL replays to %s (written %s)", m.ID, max(r.End, stop), r.EndTime.UTC().Format(time.RFC3339))
	beyond := func(what string) error {
		if r.Gap != "" {
			return fmt.Errorf("region %s cannot restore %s to %s: WAL segment %s is missing, and %s; %w (run drctl verify; restore from another region, or choose a target before the gap)",
				o.Region.Name, o.Cluster, what, r.Gap, reach, ErrGap)
		}
		return fmt.Errorf("region %s cannot restore %s to %s: it holds no WAL that far; %s. Choose an earlier target, or none for the newest: %w",
			o.Region.Name, o.Cluster, what, reach, storage.ErrNotFound)
	}
	switch {
	case o.TargetLSN != nil && *o.TargetLSN > max(r.End, stop):
		return beyond("LSN " + o.TargetLSN.String())
	case o.TargetTime != nil && r.EndTime.Before(*o.TargetTime):
		return beyond(o.TargetTime.UTC().Format(time.RFC3339Nano))
	case o.TargetLSN == nil && o.TargetTime == nil && r.Gap != "" && !o.AcceptGap && o.Standby == nil:
		return fmt.Errorf("region %s cannot restore %s to its newest WAL: segment %s is missing, so %s, and the WAL stored after the gap (to %s) would be lost: %w. "+
			"Run drctl verify; restore from another region; or pass --accept-gap to restore up to the gap",
			o.Region.Name, o.Cluster, r.Gap, reach, r.Beyond, ErrGap)
	}
	return nil
}

// chooseBackup picks the backup --backup names, or the newest that ended
// before the target.
func chooseBackup(backups []Manifest, damaged []snapshots.Damaged, o RestoreOptions) (Manifest, error) {
	if o.BackupID != "" {
		for _, b := range backups {
			if b.ID == o.BackupID {
				if err := endsBefore(b, o); err != nil {
					return Manifest{}, err
				}
				return b, nil
			}
		}
		for _, d := range damaged {
			if d.ID() == o.BackupID {
				return Manifest{}, fmt.Errorf("backup %s in region %s is damaged: %s", o.BackupID, o.Region.Name, d.Problem)
			}
		}
		return Manifest{}, fmt.Errorf("region %s has no backup %s of %s (drctl backups lists them): %w", o.Region.Name, o.BackupID, o.Cluster, storage.ErrNotFound)
	}
	if len(backups) == 0 {
		return Manifest{}, fmt.Errorf("region %s holds no complete base backup of %s: %w", o.Region.Name, o.Cluster, storage.ErrNotFound)
	}
	for i := len(backups) - 1; i >= 0; i-- {
		if endsBefore(backups[i], o) == nil {
			return backups[i], nil
		}
	}
	return Manifest{}, fmt.Errorf("region %s has no backup of %s that ended before the target; the oldest ended at %s (%s): %w",
		o.Region.Name, o.Cluster, backups[0].StopTime.Format(time.RFC3339), backups[0].StopLSN, storage.ErrNotFound)
}

// endsBefore refuses a backup that ended after the target: recovery must pass
// its stop position to be consistent.
func endsBefore(b Manifest, o RestoreOptions) error {
	stop, _ := pgwal.ParseLSN(b.StopLSN)
	switch {
	case o.TargetTime != nil && !b.StopTime.Before(*o.TargetTime):
		return fmt.Errorf("backup %s ended at %s, not before the target time %s: %w", b.ID, b.StopTime.Format(time.RFC3339Nano), o.TargetTime.Format(time.RFC3339Nano), storage.ErrNotFound)
	case o.TargetLSN != nil && stop > *o.TargetLSN:
		return fmt.Errorf("backup %s ended at %s, after the target LSN %s: %w", b.ID, stop, *o.TargetLSN, storage.ErrNotFound)
	}
	return nil
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
	// Chunk buffers are reused: allocating (and zeroing) 32 MiB per chunk cost a
	// fifth of a restore's CPU.
	buffers := make(chan []byte, fetchAhead+1)
	for range fetchAhead + 1 {
		buffers <- nil
	}
	g.Go(func() error {
		for i, obj := range m.Chunks {
			var buf []byte
			select {
			case buf = <-buffers:
			case <-gctx.Done():
				return gctx.Err()
			}
			g.Go(func() error {
				if int64(cap(buf)) < obj.PlainSize {
					buf = make([]byte, obj.PlainSize)
				}
				data := buf[:obj.PlainSize]
				rc, err := o.Region.Pipeline.Open(gctx, obj)
				if err != nil {
					return fmt.Errorf("backup %s chunk %d: %w", m.ID, i, err)
				}
				defer rc.Close()
				if _, err := io.ReadFull(rc, data); err != nil {
					return fmt.Errorf("backup %s chunk %d: %w", m.ID, i, err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil { // EOF: the checksum is checked
					return fmt.Errorf("backup %s chunk %d: %w", m.ID, i, err)
				}
				results[i] <- data
				return nil
			})
		}
		return nil
	})
	cr := &chunkReader{ctx: gctx, results: results, release: func(b []byte) { buffers <- b }}
	g.Go(func() error {
		var src tarSource = cr
		if m.ArchiveCompression == "zstd" {
			zs, err := newZstdSource(cr)
			if err != nil {
				return fmt.Errorf("backup %s: %w", m.ID, err)
			}
			defer zs.Close()
			src = zs
		}
		if err := newExtractor(o.TargetDir, uid, gid).run(src, m.PlainSize, o.Progress); err != nil {
			return err
		}
		// Read what follows the end of the archive: every chunk is then
		// consumed (and its buffer released), and a compressed stream
		// is checked to its end.
		if _, err := io.Copy(io.Discard, src); err != nil {
			return fmt.Errorf("backup %s: after the archive: %w", m.ID, err)
		}
		return nil
	})
	return g.Wait()
}

// zstdSource reads an archive the server compressed: the chunks, in order,
// are one zstd stream. A goroutine decodes it into megabyte buffers ahead of
// the extractor, so that decoding and write(2) overlap and file data goes to
// write(2) in large pieces, as from the chunk buffers.
type zstdSource struct {
	full     chan decoded
	free     chan []byte
	stop     chan struct{}
	done     chan struct{}
	buf      []byte
	off, end int
	err      error
}

type decoded struct {
	buf []byte
	n   int
	err error
}

// decodeAhead is how many decoded buffers wait for the extractor.
const decodeAhead = 4

func newZstdSource(r io.Reader) (*zstdSource, error) {
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
	if err != nil {
		return nil, fmt.Errorf("decompress archive: %w", err)
	}
	z := &zstdSource{full: make(chan decoded, decodeAhead), free: make(chan []byte, decodeAhead+1),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range decodeAhead + 1 {
		z.free <- make([]byte, maxWrite)
	}
	go z.decode(dec)
	return z, nil
}

// decode fills free buffers from dec until the stream ends or fails.
func (z *zstdSource) decode(dec *zstd.Decoder) {
	defer close(z.done)
	defer dec.Close()
	for {
		var buf []byte
		select {
		case buf = <-z.free:
		case <-z.stop:
			return
		}
		n, err := io.ReadFull(dec, buf)
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			err = io.EOF
		case err != nil && !errors.Is(err, io.EOF):
			err = fmt.Errorf("decompress archive: %w", err)
		}
		select {
		case z.full <- decoded{buf, n, err}:
		case <-z.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// fill makes buf hold unread bytes; io.EOF at the end of the stream.
func (z *zstdSource) fill() error {
	for z.off == z.end {
		if z.err != nil {
			return z.err
		}
		if z.buf != nil {
			z.free <- z.buf
		}
		d := <-z.full
		z.buf, z.off, z.end, z.err = d.buf, 0, d.n, d.err
	}
	return nil
}

func (z *zstdSource) Read(p []byte) (int, error) {
	if err := z.fill(); err != nil {
		return 0, err
	}
	n := copy(p, z.buf[z.off:z.end])
	z.off += n
	return n, nil
}

func (z *zstdSource) CopyTo(w io.Writer, n int64) error {
	for n > 0 {
		if err := z.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		k := min(n, int64(z.end-z.off))
		if _, err := w.Write(z.buf[z.off : z.off+int(k)]); err != nil {
			return err
		}
		z.off += int(k)
		n -= k
	}
	return nil
}

// Close stops the decoder and waits for it.
func (z *zstdSource) Close() {
	close(z.stop)
	<-z.done
}

// chunkReader reads the downloaded chunks in order, straight from their
// buffers, handing each buffer back once it is consumed.
type chunkReader struct {
	ctx     context.Context
	results []chan []byte
	release func([]byte)
	next    int
	cur     []byte
	off     int
}

// fill makes cur hold unread bytes, releasing used-up buffers; io.EOF after
// the last chunk.
func (c *chunkReader) fill() error {
	for c.off == len(c.cur) {
		if c.cur != nil {
			c.release(c.cur)
			c.cur = nil
		}
		if c.next == len(c.results) {
			return io.EOF
		}
		select {
		case c.cur = <-c.results[c.next]:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		c.next, c.off = c.next+1, 0
	}
	return nil
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if err := c.fill(); err != nil {
		return 0, err
	}
	n := copy(p, c.cur[c.off:])
	c.off += n
	return n, nil
}

// maxWrite caps one write(2): whole 32 MiB chunk slices in one call measured
// more than twice the kernel time of 1 MiB writes on a 0.9 GB restore.
const maxWrite = 1 << 20

// CopyTo writes the next n bytes to w straight from the chunk buffers, at most
// maxWrite a call, releasing each buffer as it is used up.
func (c *chunkReader) CopyTo(w io.Writer, n int64) error {
	for n > 0 {
		if err := c.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		k := min(n, int64(len(c.cur)-c.off), maxWrite)
		if _, err := w.Write(c.cur[c.off : c.off+int(k)]); err != nil {
			return err
		}
		c.off += int(k)
		n -= k
	}
	return nil
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

// recoveryTargets sets every recovery_target* setting: the others reset,
// then the one chosen. A backup of a server that was itself restored carries
// that restore's settings in postgresql.auto.conf (or postgresql.conf); left
// in place, an old recovery_target_time would stop a restore to the newest
// WAL early. The chosen one comes last: PostgreSQL 15 refuses any target
// assigned after another is set, even an empty one ("multiple recovery
// targets specified").
func recoveryTargets(o RestoreOptions) []string {
	lines := []string{"recovery_target_inclusive = 'on'"}
	chosen := ""
	switch {
	case o.TargetTime != nil:
		chosen = "recovery_target_time = '" + o.TargetTime.UTC().Format("2006-01-02 15:04:05.999999-07:00") + "'"
	case o.TargetLSN != nil:
		chosen = "recovery_target_lsn = '" + o.TargetLSN.String() + "'"
	}
	for _, k := range []string{"recovery_target", "recovery_target_lsn", "recovery_target_name", "recovery_target_time", "recovery_target_xid"} {
		if !strings.HasPrefix(chosen, k+" ") {
			lines = append(lines, k+" = ''")
		}
	}
	if chosen != "" {
		lines = append(lines, chosen)
	}
	return lines
}

// withoutSettings returns conf's lines without those that set a setting the
// lines set: PostgreSQL applies a duplicate's assign hook at startup, so an
// old recovery_target_time followed by a reset still counts as a second
// target ("multiple recovery targets specified").
func withoutSettings(conf string, lines []string) []string {
	set := map[string]bool{}
	for _, l := range lines {
		if k, _, ok := strings.Cut(l, "="); ok {
			set[strings.TrimSpace(k)] = true
		}
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(conf, "\n"), "\n") {
		k, _, ok := strings.Cut(l, "=")
		if ok && set[strings.ToLower(strings.TrimSpace(k))] {
			continue
		}
		out = append(out, l)
	}
	return out
}

// writeRecoveryConfig writes the recovery settings into postgresql.auto.conf
// (replacing any earlier setting of the same names) and
// creates recovery.signal (standby.signal for a standby). It also unties the copy from the old host: its port,
// socket folder, archiving and any replication source.
func writeRecoveryConfig(o RestoreOptions, uid, gid int) error {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	lines := []string{
		"",
		"# Written by drkit restore (" + time.Now().UTC().Format(time.RFC3339) + ")",
		"restore_command = " + q(o.RestoreCommand),
		"recovery_target_timeline = 'latest'",
		"archive_mode = 'off'",
		"archive_command = ''",
		"unix_socket_directories = " + q(o.TargetDir),
	}
	signal := filepath.Join(o.TargetDir, "recovery.signal")
	switch {
	case o.Standby != nil:
		signal = filepath.Join(o.TargetDir, "standby.signal")
		lines = append(lines, "hot_standby = 'on'",
			"primary_conninfo = "+q(o.Standby.PrimaryConnInfo),
			"primary_slot_name = "+q(o.Standby.Slot))
	default:
		lines = append(lines, "recovery_target_action = 'promote'", "primary_conninfo = ''", "primary_slot_name = ''")
	}
	lines = append(lines, recoveryTargets(o)...)
	if o.Port > 0 {
		lines = append(lines, fmt.Sprintf("port = %d", o.Port))
	}
	auto := filepath.Join(o.TargetDir, "postgresql.auto.conf")
	old, err := os.ReadFile(auto)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	text := strings.Join(withoutSettings(string(old), lines), "\n") + "\n" + strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(auto, []byte(text), 0o600); err != nil {
		return err
	}
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
