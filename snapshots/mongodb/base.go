package mongodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// FormatVersion is the base manifest format this drkit writes and reads.
const FormatVersion = 1

// Collection is one collection of a base backup.
type Collection struct {
	DB   string `json:"db"`
	Name string `json:"name"`
	// Options are the collection's options (listCollections), as canonical
	// extended JSON; Indexes its index specifications but _id's.
	Options string         `json:"options,omitempty"`
	Indexes []string       `json:"indexes,omitempty"`
	Object  storage.Object `json:"object"`
	Docs    int64          `json:"docs"`
	Bytes   int64          `json:"bytes"`
}

// NS is the collection's namespace, db.name.
func (c Collection) NS() string { return c.DB + "." + c.Name }

// Base is a base backup's manifest.
type Base struct {
	FormatVersion int    `json:"format_version"`
	Engine        string `json:"engine"`
	Cluster       string `json:"cluster"`
	ID            string `json:"id"`
	// Start is the oplog position before the first document was read:
	// the oplog after it makes the collections consistent. End is the
	// position after the last one: a restore replays at least to it.
	Start mgwal.TS `json:"start_ts"`
	End   mgwal.TS `json:"end_ts"`
	// Lookback is how many seconds of ts before Start a restore replays
	// too: entries a server (FerretDB) wrote to its oplog after Start with
	// an older ts (binlog/mongodb). 0 on a replica set.
	Lookback    uint32       `json:"lookback_seconds,omitempty"`
	Time        time.Time    `json:"time"`
	StopTime    time.Time    `json:"stop_time"`
	Collections []Collection `json:"collections"`
	Docs        int64        `json:"docs"`
	Bytes       int64        `json:"bytes"`
	StoredSize  int64        `json:"stored_size"`
}

// BackupID is the backup's id (snapshots.Identified).
func (b Base) BackupID() string { return b.ID }

// maxCollections bounds what a manifest read from a store may list.
const maxCollections = 1 << 20

// CheckBase checks a decoded manifest before anything uses it: a store is
// untrusted.
func CheckBase(b Base) error {
	if b.FormatVersion != FormatVersion || b.Engine != "mongodb" {
		return fmt.Errorf("a %s manifest of format %d; this drkit reads mongodb format %d", b.Engine, b.FormatVersion, FormatVersion)
	}
	if b.ID == "" || strings.ContainsAny(b.ID, "/\\") || b.End < b.Start || len(b.Collections) > maxCollections || b.Lookback > 60 {
		return fmt.Errorf("id %q, oplog %s..%s, %d collections: not a base backup", b.ID, b.Start, b.End, len(b.Collections))
	}
	prefix := snapshots.BaseKey(b.Cluster, b.ID, "parts") + "/"
	for _, c := range b.Collections {
		if c.DB == "" || c.Name == "" || strings.ContainsRune(c.NS(), 0) || c.Docs < 0 || c.Bytes < 0 {
			return fmt.Errorf("collection %q: not a namespace", c.NS())
		}
		if !strings.HasPrefix(c.Object.Key, prefix) || strings.Contains(c.Object.Key, "..") || c.Object.Size < 0 {
			return fmt.Errorf("collection %s's object %q is not in the backup's folder %s", c.NS(), c.Object.Key, prefix)
		}
	}
	return nil
}

// ListBases returns a region's complete base backups, oldest first, and the
// manifests it could not read.
func ListBases(ctx context.Context, p *storage.Pipeline, cluster string) ([]Base, []snapshots.Damaged, error) {
	out, damaged, err := snapshots.ListManifests(ctx, p, cluster, func(b Base) error {
		if b.Cluster != cluster {
			return fmt.Errorf("a manifest of cluster %q in cluster %q's folder", b.Cluster, cluster)
		}
		return CheckBase(b)
	})
	slices.SortStableFunc(out, func(a, b Base) int { return cmp.Or(cmp.Compare(a.End, b.End), a.Time.Compare(b.Time)) })
	return out, damaged, err
}

// systemDBs are not backed up: they hold the server's own state.
var systemDBs = map[string]bool{"admin": true, "local": true, "config": true}

// Backup takes a base backup of the server at dsn into every region: the
// collections read in parallel, each streamed into every region at once.
// A region whose store fails is named in the error; the others hold the
// backup.
func Backup(ctx context.Context, dsn string, regions []*storage.Region, cluster string, log *slog.Logger) (Base, error) {
	src, err := mgwal.Connect(ctx, dsn)
	if err != nil {
		return Base{}, err
	}
	defer src.Close()
	if err := snapshots.EnsureClusterInfo(ctx, regions, cluster, "mongodb"); err != nil {
		return Base{}, err
	}
	began := time.Now().UTC()
	_, start, err := src.Bounds(ctx)
	if err != nil {
		return Base{}, err
	}
	id, err := snapshots.NewBackupID(ctx, regions, cluster, began)
	if err != nil {
		return Base{}, err
	}
	// Entries written with an older ts after this read (FerretDB) are
	// within the lookback: the restore replays from before it.
	b := Base{FormatVersion: FormatVersion, Engine: "mongodb", Cluster: cluster, ID: id, Start: start, Lookback: src.Lookback, Time: began}
	colls, err := listCollections(ctx, src.Client())
	if err != nil {
		return Base{}, err
	}
	failed := make([]error, len(regions))
	objs := make([][]storage.Object, len(regions))
	for i := range objs {
		objs[i] = make([]storage.Object, len(colls))
	}
	var mu sync.Mutex
	err = parallel(ctx, len(colls), 4, func(i int) error {
		c := &colls[i]
		key := snapshots.BaseKey(cluster, id, "parts", fmt.Sprintf("%06d.bson", i))
		o, f, n, err := storage.PutEach(ctx, regions, key, func(w io.Writer) (int64, error) {
			docs, n, err := dumpCollection(ctx, src.Client().Database(c.DB).Collection(c.Name), w)
			c.Docs = docs
			return n, err
		})
		if err != nil {
			return fmt.Errorf("base backup %s: collection %s: %w", id, c.NS(), err)
		}
		c.Bytes = n
		mu.Lock()
		defer mu.Unlock()
		for r := range regions {
			objs[r][i] = o[r]
			if failed[r] == nil && f[r] != nil {
				failed[r] = fmt.Errorf("region %s: %w", regions[r].Name, f[r])
			}
		}
		log.Debug("backed up a collection", "ns", c.NS(), "docs", c.Docs, "bytes", n)
		return nil
	})
	if err != nil {
		return Base{}, err
	}
	_, end, err := src.Bounds(ctx)
	if err != nil {
		return Base{}, err
	}
	b.End, b.Collections = max(end, b.Start), colls
	for _, c := range colls {
		b.Docs += c.Docs
		b.Bytes += c.Bytes
	}
	stored := 0
	for r, region := range regions {
		if failed[r] != nil {
			continue
		}
		rb := b
		rb.Collections = slices.Clone(colls)
		for i := range rb.Collections {
			rb.Collections[i].Object = objs[r][i]
			rb.StoredSize += objs[r][i].Size
		}
		rb.StopTime = time.Now().UTC()
		if err := snapshots.WriteManifest(ctx, region.Store, cluster, id, rb); err != nil {
			failed[r] = fmt.Errorf("region %s: %w", region.Name, err)
			continue
		}
		stored++
	}
	if stored == 0 {
		return b, fmt.Errorf("base backup %s: %w", id, errors.Join(failed...))
	}
	return b, errors.Join(failed...)
}

// listCollections lists the collections to back up, with their options
// and indexes. Views and system collections are left out.
func listCollections(ctx context.Context, c *mongo.Client) ([]Collection, error) {
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("mongodb: list databases: %w", err)
	}
	slices.Sort(dbs)
	var out []Collection
	for _, db := range dbs {
		if systemDBs[db] {
			continue
		}
		specs, err := c.Database(db).ListCollectionSpecifications(ctx, bson.D{})
		if err != nil {
			return nil, fmt.Errorf("mongodb: list the collections of %s: %w", db, err)
		}
		slices.SortFunc(specs, func(a, b mongo.CollectionSpecification) int { return cmp.Compare(a.Name, b.Name) })
		for _, s := range specs {
			if s.Type != "collection" || strings.HasPrefix(s.Name, "system.") {
				continue
			}
			col := Collection{DB: db, Name: s.Name}
			if len(s.Options) > 0 {
				opts, err := bson.MarshalExtJSON(s.Options, true, false)
				if err != nil {
					return nil, fmt.Errorf("mongodb: %s.%s's options: %w", db, s.Name, err)
				}
				col.Options = string(opts)
			}
			if col.Indexes, err = indexSpecs(ctx, c.Database(db).Collection(s.Name)); err != nil {
				return nil, err
			}
			out = append(out, col)
		}
	}
	return out, nil
}

// indexSpecs are a collection's index specifications but _id's, as
// canonical extended JSON.
func indexSpecs(ctx context.Context, coll *mongo.Collection) ([]string, error) {
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("mongodb: list the indexes of %s: %w", coll.Name(), err)
	}
	defer cur.Close(ctx)
	var out []string
	for cur.Next(ctx) {
		if name, _ := cur.Current.Lookup("name").StringValueOK(); name == "_id_" {
			continue
		}
		js, err := bson.MarshalExtJSON(cur.Current, true, false)
		if err != nil {
			return nil, err
		}
		out = append(out, string(js))
	}
	return out, cur.Err()
}

// dumpCollection writes every document of coll to w as BSON.
func dumpCollection(ctx context.Context, coll *mongo.Collection, w io.Writer) (docs, n int64, err error) {
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		return 0, 0, err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		k, err := w.Write(cur.Current)
		n += int64(k)
		if err != nil {
			return docs, n, err
		}
		docs++
	}
	return docs, n, cur.Err()
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the
// first error; the others stop taking work after it.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}
