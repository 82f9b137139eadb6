package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// DefaultChunkSize is how much of the tar stream one object holds.
const DefaultChunkSize = 32 << 20

// chunksInFlight bounds memory: one chunk filling, this many uploading.
const chunksInFlight = 2

// BackupOptions say what to back up and where.
type BackupOptions struct {
	Cluster   string
	DSN       string
	Regions   []*storage.Region
	ChunkSize int64
	Log       *slog.Logger
	// Progress, if set, is told the tar bytes received so far.
	Progress func(done int64)
}

// Backup takes a base backup of the cluster into every region and returns its
// manifest (with the first region's object records).
func Backup(ctx context.Context, o BackupOptions) (Manifest, error) {
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	conn, err := pgwal.ConnectReplication(ctx, o.DSN)
	if err != nil {
		return Manifest{}, err
	}
	defer conn.Close(context.Background())
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return Manifest{}, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	segSize, version, err := pgwal.ServerSettings(ctx, conn)
	if err != nil {
		return Manifest{}, err
	}
	info := pgwal.ClusterInfo{Engine: "postgres", SystemIdentifier: sys.SystemID, WALSegmentSize: segSize, ServerVersion: version}
	for _, r := range o.Regions {
		if err := (&pgwal.Catalog{Pipeline: r.Pipeline, Cluster: o.Cluster}).EnsureInfo(ctx, info); err != nil {
			return Manifest{}, err
		}
	}
	began := time.Now().UTC()
	id, err := snapshots.NewBackupID(ctx, o.Regions, o.Cluster, began)
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{
		Engine: "postgres", Cluster: o.Cluster,
		ID: id, SystemIdentifier: sys.SystemID, ServerVersion: version,
		WALSegmentSize: segSize, WALIncluded: true, StartTime: began, Fence: storage.Fence(ctx),
	}
	up := &uploader{o: o, id: m.ID, records: make([][]storage.Object, len(o.Regions))}
	if err := up.run(ctx, conn, &m, serverLevel(o.Regions)); err != nil {
		up.cleanup()
		return Manifest{}, err
	}
	for i, r := range o.Regions {
		rm := m
		rm.Chunks = up.records[i]
		rm.BackupManifest = up.pgManifest[i]
		for _, c := range rm.Chunks {
			rm.StoredSize += c.Size
		}
		if err := writeManifest(ctx, r.Store, rm); err != nil {
			up.cleanup()
			return Manifest{}, fmt.Errorf("region %s: write manifest: %w", r.Name, err)
		}
		if i == 0 {
			m = rm
		}
	}
	o.Log.Info("base backup complete", "cluster", o.Cluster, "id", m.ID, "start_lsn", m.StartLSN, "stop_lsn", m.StopLSN,
		"bytes", m.PlainSize, "stored", m.StoredSize, "compressed_by", compressedBy(m), "chunks", len(m.Chunks), "regions", len(o.Regions), "took", time.Since(began).Round(time.Millisecond))
	return m, nil
}

// serverLevel is the zstd level at which the server is asked to compress the
// archive: the regions' level when they all share one (storage's
// compression_level is one setting), else 0 and each region's pipeline
// compresses the chunks itself. PostgreSQL's libzstd compresses as small as
// the pipeline at the same level and about twice as fast (pgbench scale 60,
// level 1: 42 MB either way; pg_basebackup --compress=server-zstd:1 took
// 1.4-1.6 s where drctl took 2.4-3.2 s with 3.4-3.9 CPU-s of its own), and
// the archive then crosses the connection compressed.
func serverLevel(regions []*storage.Region) int {
	if len(regions) == 0 {
		return 0
	}
	level := regions[0].Pipeline.Level
	for _, r := range regions[1:] {
		if r.Pipeline.Level != level {
			return 0
		}
	}
	return max(level, 0)
}

func compressedBy(m Manifest) string {
	if m.ArchiveCompression != "" {
		return "server"
	}
	return "drkit"
}

// uploader cuts the tar stream into chunks and sends each to every region.
type uploader struct {
	o          BackupOptions
	id         string
	compressed bool // the server compresses the archive
	mu         sync.Mutex
	records    [][]storage.Object // per region, per chunk
	pgManifest []storage.Object   // per region
}

// start sends BASE_BACKUP, asking the server to compress at level; a server
// built without zstd is asked again without.
func (u *uploader) start(ctx context.Context, conn *pgconn.PgConn, level int) (*baseBackupStream, error) {
	bb, err := startBaseBackup(ctx, conn, "drkit "+u.id, level)
	var se *serverError
	if level > 0 && errors.As(err, &se) && strings.Contains(se.Message, "compression") {
		u.o.Log.Warn("the server cannot compress the backup; drkit compresses it instead", "cluster", u.o.Cluster, "server_said", se.Message)
		bb, err = startBaseBackup(ctx, conn, "drkit "+u.id, 0)
		level = 0
	}
	u.compressed = err == nil && level > 0
	return bb, err
}

// run streams BASE_BACKUP into chunks and fills in m's positions and size.
func (u *uploader) run(ctx context.Context, conn *pgconn.PgConn, m *Manifest, level int) error {
	bb, err := u.start(ctx, conn, level)
	if err != nil {
		return err
	}
	m.Timeline, m.StartLSN = bb.Timeline, bb.Start.String()
	if u.compressed {
		m.FormatVersion, m.ArchiveCompression = 2, "zstd"
	} else {
		m.FormatVersion = 1 // readable by every drkit
	}
	g, gctx := errgroup.WithContext(ctx)
	// Chunk buffers are reused: chunksInFlight uploading and one filling.
	// (A new 32 MiB buffer per chunk was zeroed by the runtime each time.)
	free := make(chan []byte, chunksInFlight+1)
	for range chunksInFlight + 1 {
		free <- nil
	}
	size := int(u.o.ChunkSize)
	chunk := make([]byte, 0, size)
	<-free
	n := 0
	var total int64
	var pgManifest bytes.Buffer
	send := func() error {
		data, idx := chunk, n
		select {
		case chunk = <-free: // blocks while chunksInFlight chunks upload
		case <-gctx.Done():
			return gctx.Err()
		}
		if chunk == nil {
			chunk = make([]byte, 0, size)
		}
		g.Go(func() error {
			defer func() { free <- data[:0] }()
			return u.putChunk(gctx, idx, data)
		})
		n++
		return nil
	}
	for {
		data, _, isManifest, err := bb.next(gctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = g.Wait()
			return fmt.Errorf("receive base backup: %w", err)
		}
		if isManifest {
			pgManifest.Write(data)
			continue
		}
		total += int64(len(data))
		if u.o.Progress != nil {
			u.o.Progress(u.plainDone(bb, total))
		}
		for len(data) > 0 {
			k := min(cap(chunk)-len(chunk), len(data))
			chunk, data = append(chunk, data[:k]...), data[k:]
			if len(chunk) == cap(chunk) {
				if err := send(); err != nil {
					_ = g.Wait()
					return err
				}
			}
		}
	}
	if len(chunk) > 0 {
		if err := send(); err != nil {
			_ = g.Wait()
			return err
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := bb.finish(ctx); err != nil {
		return err
	}
	m.StopLSN, m.StopTime, m.PlainSize = bb.Stop.String(), time.Now().UTC(), u.plainDone(bb, total)
	if pgManifest.Len() == 0 {
		return errors.New("the server sent no backup manifest")
	}
	u.pgManifest = make([]storage.Object, len(u.o.Regions))
	for i, r := range u.o.Regions {
		obj, err := r.Pipeline.Put(ctx, baseKey(u.o.Cluster, u.id, "backup_manifest"), bytes.NewReader(pgManifest.Bytes()))
		if err != nil {
			return fmt.Errorf("store backup_manifest: %w", err)
		}
		u.pgManifest[i] = obj
	}
	return nil
}

// plainDone is how much of the archive has been received, given the bytes
// received: the server's count when it compresses (it reports the archive's
// bytes before compression, and their total at the end).
func (u *uploader) plainDone(bb *baseBackupStream, received int64) int64 {
	if u.compressed {
		return bb.Progress
	}
	return received
}

// cleanup removes a failed backup's objects, best effort: without manifest.json
// they are never used, but they take space.
func (u *uploader) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, r := range u.o.Regions {
		var keys []string
		for info, err := range r.Store.List(ctx, baseKey(u.o.Cluster, u.id)) {
			if err != nil {
				break
			}
			keys = append(keys, info.Key)
		}
		if err := r.Store.Delete(ctx, keys...); err != nil {
			u.o.Log.Warn("could not remove a failed backup's objects", "region", r.Name, "id", u.id, "err", err)
		}
	}
}

// putChunk stores chunk n in every region in parallel and records its
// objects. The chunk is in memory: it is hashed and compressed once for every
// region and encoded in one call (PutPlain), which cost a third less CPU than
// Put's streaming encoder, pipe and second copy of every byte. A chunk the
// server compressed is stored as it came.
func (u *uploader) putChunk(ctx context.Context, n int, data []byte) error {
	g, gctx := errgroup.WithContext(ctx)
	sum := sha256.Sum256(data)
	plain := &storage.Plain{Data: data}
	for i, r := range u.o.Regions {
		g.Go(func() error {
			obj := r.Pipeline.Described(hex.EncodeToString(sum[:]), int64(len(data)))
			if u.compressed {
				obj.Compression = "none"
			}
			obj.Key = baseKey(u.o.Cluster, u.id, fmt.Sprintf("chunk-%05d", n))
			obj, err := r.Pipeline.PutPlain(gctx, obj, plain)
			if err != nil {
				return fmt.Errorf("backup chunk %d: %w", n, err)
			}
			u.mu.Lock()
			for len(u.records[i]) <= n {
				u.records[i] = append(u.records[i], storage.Object{})
			}
			u.records[i][n] = obj
			u.mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}
