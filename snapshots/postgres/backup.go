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
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	pgwal "github.com/drkit/drkit/binlog/postgres"
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
	m := Manifest{
		FormatVersion: FormatVersion, Engine: "postgres", Cluster: o.Cluster,
		ID: began.Format("20060102T150405.000Z"), SystemIdentifier: sys.SystemID, ServerVersion: version,
		WALSegmentSize: segSize, WALIncluded: true, StartTime: began,
	}
	up := &uploader{o: o, id: m.ID, records: make([][]storage.Object, len(o.Regions))}
	if err := up.run(ctx, conn, &m); err != nil {
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
		"bytes", m.PlainSize, "chunks", len(m.Chunks), "regions", len(o.Regions), "took", time.Since(began).Round(time.Millisecond))
	return m, nil
}

// uploader cuts the tar stream into chunks and sends each to every region.
type uploader struct {
	o          BackupOptions
	id         string
	mu         sync.Mutex
	records    [][]storage.Object // per region, per chunk
	pgManifest []storage.Object   // per region
}

// run streams BASE_BACKUP into chunks and fills in m's positions and size.
func (u *uploader) run(ctx context.Context, conn *pgconn.PgConn, m *Manifest) error {
	bb, err := startBaseBackup(ctx, conn, "drkit "+u.id)
	if err != nil {
		return err
	}
	m.Timeline, m.StartLSN = bb.Timeline, bb.Start.String()
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
			u.o.Progress(total)
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
	m.StopLSN, m.StopTime, m.PlainSize = bb.Stop.String(), time.Now().UTC(), total
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
// Put's streaming encoder, pipe and second copy of every byte.
func (u *uploader) putChunk(ctx context.Context, n int, data []byte) error {
	g, gctx := errgroup.WithContext(ctx)
	sum := sha256.Sum256(data)
	plain := &storage.Plain{Data: data}
	for i, r := range u.o.Regions {
		g.Go(func() error {
			obj := r.Pipeline.Described(hex.EncodeToString(sum[:]), int64(len(data)))
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
