package mongodb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// RestoreOptions is one restore from Region only.
type RestoreOptions struct {
	Cluster   string
	Region    *storage.Region
	TargetDSN string
	// Stop is the target time (zero: everything the region holds).
	Stop      time.Time
	BackupID  string
	AcceptGap bool
	Log       *slog.Logger
	// Phase, if set, is told when the restore moves on to another phase
	// (a drill times them).
	Phase func(name string)
}

// RestoreResult is what a restore did.
type RestoreResult struct {
	Backup string `json:"backup"`
	Region string `json:"region"`
	Docs   int64  `json:"documents_loaded"`
	// Entries are the oplog entries replayed; LastTS and LastTime the
	// newest of them.
	Entries  int64     `json:"oplog_entries_replayed"`
	LastTS   mgwal.TS  `json:"last_ts"`
	LastTime time.Time `json:"last_time,omitzero"`
	Indexes  int       `json:"indexes_built"`
	Gap      string    `json:"gap,omitempty"`
}

// Restore loads a base backup into an empty server and replays the
// region's oplog from it to o.Stop.
func Restore(ctx context.Context, o RestoreOptions) (RestoreResult, error) {
	p := o.Region.Pipeline
	res := RestoreResult{Region: o.Region.Name}
	base, err := pickBase(ctx, p, o)
	if err != nil {
		return res, err
	}
	res.Backup = base.ID
	chunks, gap, err := plan(ctx, p, o, base)
	if err != nil {
		return res, err
	}
	res.Gap = gap
	target, err := mongo.Connect(options.Client().ApplyURI(o.TargetDSN).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return res, fmt.Errorf("target: %w", err)
	}
	defer target.Disconnect(context.WithoutCancel(ctx))
	if err := CheckEmpty(ctx, target); err != nil {
		return res, err
	}
	if res.Docs, err = load(ctx, p, target, base); err != nil {
		return res, err
	}
	snapshots.Enter(o.Phase, "replay")
	if err := replay(ctx, p, o, base, chunks, target, &res); err != nil {
		return res, err
	}
	snapshots.Enter(o.Phase, "build indexes")
	res.Indexes, err = buildIndexes(ctx, target, base)
	return res, err
}

// pickBase is the backup asked for, or the newest that ended before the
// target time.
func pickBase(ctx context.Context, p *storage.Pipeline, o RestoreOptions) (Base, error) {
	bases, damaged, err := ListBases(ctx, p, o.Cluster)
	if err != nil {
		return Base{}, err
	}
	for _, d := range damaged {
		o.Log.Warn("skipping a damaged backup manifest", "region", p.Region, "manifest", d.Key, "problem", d.Problem)
	}
	for i := len(bases) - 1; i >= 0; i-- {
		b := bases[i]
		if o.BackupID != "" {
			if b.ID == o.BackupID {
				return b, nil
			}
			continue
		}
		if o.Stop.IsZero() || !b.StopTime.After(o.Stop) {
			return b, nil
		}
	}
	if o.BackupID != "" {
		return Base{}, fmt.Errorf("region %s holds no backup %s of cluster %s: %w", p.Region, o.BackupID, o.Cluster, storage.ErrNotFound)
	}
	if o.Stop.IsZero() {
		return Base{}, fmt.Errorf("region %s holds no base backup of cluster %s: %w", p.Region, o.Cluster, storage.ErrNotFound)
	}
	return Base{}, fmt.Errorf("region %s holds no base backup of cluster %s that ended by %s: %w", p.Region, o.Cluster, o.Stop.Format(time.RFC3339), storage.ErrNotFound)
}

// plan returns the chunks a restore of base to o.Stop reads, from the chain
// that holds the base's start; gap names where an --accept-gap restore
// stops short.
func plan(ctx context.Context, p *storage.Pipeline, o RestoreOptions, base Base) ([]mgwal.ChunkRef, string, error) {
	refs, err := (&mgwal.Catalog{Pipeline: p, Cluster: o.Cluster}).List(ctx)
	if err != nil {
		return nil, "", err
	}
	var chain *mgwal.Chain
	chains := mgwal.Chains(refs)
	for i := range chains {
		if chains[i].Start <= base.Start {
			chain = &chains[i]
		}
	}
	if chain == nil {
		return nil, "", fmt.Errorf("region %s holds no oplog from backup %s's start (ts %s): it cannot be made consistent; verify names what the region lacks", p.Region, base.ID, base.Start)
	}
	if !o.Stop.IsZero() && chain.Sealed.Before(o.Stop) {
		return nil, "", fmt.Errorf("region %s holds cluster %s's oplog to %s, before the target time %s (the newest restorable time): %w",
			p.Region, o.Cluster, chain.Sealed.Format(time.RFC3339Nano), o.Stop.Format(time.RFC3339Nano), storage.ErrNotFound)
	}
	var out []mgwal.ChunkRef
	end := chain.Start
	for _, c := range chain.Chunks {
		if c.Start != end && c.End > base.Start {
			gap := fmt.Sprintf("oplog (%s, %s] is missing before %s", end, c.Start, c.Object.Key)
			if end < base.End || !o.AcceptGap {
				return nil, "", fmt.Errorf("region %s: %s; verify names it (--accept-gap restores up to it when the backup is consistent before it)", p.Region, gap)
			}
			return out, gap, nil
		}
		end = max(end, c.End)
		if c.End <= base.Start.Back(base.Lookback) {
			continue
		}
		if !o.Stop.IsZero() && c.Start.Time().After(o.Stop.Add(2*time.Second)) {
			break
		}
		out = append(out, c)
	}
	if end < base.End {
		return nil, "", fmt.Errorf("region %s holds the oplog to ts %s, short of backup %s's end %s: it cannot be made consistent", p.Region, end, base.ID, base.End)
	}
	return out, "", nil
}

// checkEmpty refuses a target holding any database but the server's own.
// CheckEmpty refuses a target that holds any database but the system ones;
// it changes nothing.
func CheckEmpty(ctx context.Context, target *mongo.Client) error {
	dbs, err := target.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("target: list databases: %w (check --target-dsn's host, user and password)", err)
	}
	dbs = slices.DeleteFunc(dbs, func(d string) bool { return systemDBs[d] })
	if len(dbs) > 0 {
		return fmt.Errorf("the target holds databases %v: a restore goes into an empty server; nothing was changed", dbs)
	}
	return nil
}

// ClearTarget drops every database of target but the system ones: a drill
// target (drill.target) after the drill.
func ClearTarget(ctx context.Context, target *mongo.Client) error {
	dbs, err := target.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("drill target: list databases: %w", err)
	}
	for _, d := range dbs {
		if !systemDBs[d] {
			if err := target.Database(d).Drop(ctx); err != nil {
				return fmt.Errorf("drill target: drop database %s: %w", d, err)
			}
		}
	}
	return nil
}

// load creates every collection with its options and inserts its
// documents in batches, collections in parallel.
func load(ctx context.Context, p *storage.Pipeline, target *mongo.Client, base Base) (int64, error) {
	counts := make([]int64, len(base.Collections))
	err := parallel(ctx, len(base.Collections), 4, func(i int) error {
		c := base.Collections[i]
		n, err := loadCollection(ctx, p, target, c)
		counts[i] = n
		if err != nil {
			return fmt.Errorf("restore %s: %w", c.NS(), err)
		}
		return nil
	})
	var total int64
	for _, n := range counts {
		total += n
	}
	return total, err
}

func loadCollection(ctx context.Context, p *storage.Pipeline, target *mongo.Client, c Collection) (int64, error) {
	create := bson.D{{Key: "create", Value: c.Name}}
	if c.Options != "" {
		var opts bson.D
		if err := bson.UnmarshalExtJSON([]byte(c.Options), true, &opts); err != nil {
			return 0, fmt.Errorf("its options in the manifest: %w", err)
		}
		for _, e := range opts {
			if e.Key != "uuid" {
				create = append(create, e)
			}
		}
	}
	if err := target.Database(c.DB).RunCommand(ctx, create).Err(); err != nil {
		return 0, fmt.Errorf("create: %w", err)
	}
	rc, err := p.Open(ctx, c.Object)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	coll := target.Database(c.DB).Collection(c.Name)
	br := bufio.NewReaderSize(rc, 256<<10)
	var n int64
	var batch []any
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := coll.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false)); err != nil {
			return err
		}
		n += int64(len(batch))
		batch, size = batch[:0], 0
		return nil
	}
	for {
		doc, err := mgwal.ReadDoc(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("%s: %w", c.Object.Key, err)
		}
		batch = append(batch, doc)
		if size += len(doc); len(batch) >= 1000 || size >= 8<<20 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := flush(); err != nil {
		return n, err
	}
	if n != c.Docs {
		return n, fmt.Errorf("%s holds %d documents, the manifest says %d", c.Object.Key, n, c.Docs)
	}
	return n, nil
}

// replay applies the chunks' entries after the base's start and at or
// before the target time.
func replay(ctx context.Context, p *storage.Pipeline, o RestoreOptions, base Base, chunks []mgwal.ChunkRef, target *mongo.Client, res *RestoreResult) error {
	cat := &mgwal.Catalog{Pipeline: p, Cluster: o.Cluster}
	a, err := NewApplier(ctx, target)
	if err != nil {
		return err
	}
	for _, c := range chunks {
		err := cat.Each(ctx, c, func(e mgwal.Entry) error {
			if e.TS <= base.Start.Back(base.Lookback) || !o.Stop.IsZero() && e.Wall.After(o.Stop) {
				return nil
			}
			if err := a.Apply(ctx, e); err != nil {
				return err
			}
			res.LastTS = max(res.LastTS, e.TS)
			if e.Wall.After(res.LastTime) {
				res.LastTime = e.Wall
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := a.Flush(ctx); err != nil {
		return err
	}
	res.Entries = a.Applied
	return nil
}

// buildIndexes creates every collection's indexes once its documents are
// in.
func buildIndexes(ctx context.Context, target *mongo.Client, base Base) (int, error) {
	n := 0
	for _, c := range base.Collections {
		if len(c.Indexes) == 0 {
			continue
		}
		var specs bson.A
		for _, js := range c.Indexes {
			var spec bson.D
			if err := bson.UnmarshalExtJSON([]byte(js), true, &spec); err != nil {
				return n, fmt.Errorf("%s: an index in the manifest: %w", c.NS(), err)
			}
			// v and ns are the server's to set (FerretDB refuses v).
			specs = append(specs, slices.DeleteFunc(spec, func(e bson.E) bool { return e.Key == "ns" || e.Key == "v" }))
		}
		err := target.Database(c.DB).RunCommand(ctx, bson.D{{Key: "createIndexes", Value: c.Name}, {Key: "indexes", Value: specs}}).Err()
		if err != nil {
			return n, fmt.Errorf("%s: build indexes: %w", c.NS(), err)
		}
		n += len(specs)
	}
	return n, nil
}

// ReplayedTo is the wall time of the newest oplog entry replayed
// (drill.Replayed).
func (r RestoreResult) ReplayedTo() time.Time { return r.LastTime }
