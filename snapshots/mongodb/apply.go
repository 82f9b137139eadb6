package mongodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
)

// op is what one oplog entry does to the target: a write to collection ns
// (db.coll), or a command run on database db.
type op struct {
	ns    string
	model mongo.WriteModel
	db    string
	cmd   bson.D
}

// Applier replays oplog entries into a target: writes batched into one
// ordered bulk write per run of entries of one namespace (order per
// document is oplog order), commands run between batches. Transactions are
// applied at their commit (partialTxn and prepared chains buffered, aborted
// ones dropped).
type Applier struct {
	Target *mongo.Client
	// MaxBatch bounds one bulk write (default 1000).
	MaxBatch int
	// Applied counts the entries applied (an applyOps's inner ones each).
	Applied int64

	batch   []mongo.WriteModel
	batchNS string
	txns    map[string][]bson.Raw
}

// maxBatch bounds one bulk write by default.
const maxBatch = 1000

// ferretBatch bounds one bulk write into FerretDB 1.24: it holds a SQLite
// connection per update of an update command until the command ends, from
// a pool of 100, and an update command of more waits forever.
const ferretBatch = 50

// NewApplier returns an Applier into target, its batches sized for the
// server (buildInfo).
func NewApplier(ctx context.Context, target *mongo.Client) (*Applier, error) {
	var info bson.Raw
	if err := target.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return nil, fmt.Errorf("target: buildInfo: %w", err)
	}
	a := &Applier{Target: target, MaxBatch: maxBatch}
	if _, ferret := info.Lookup("ferretdbVersion").StringValueOK(); ferret {
		a.MaxBatch = ferretBatch
	}
	return a, nil
}

// Apply replays one entry.
func (a *Applier) Apply(ctx context.Context, e mgwal.Entry) error {
	ops, err := a.translate(e.Raw)
	if err != nil {
		return fmt.Errorf("oplog entry %s (%s %s): %w", e.TS, e.Op, e.NS, err)
	}
	for _, o := range ops {
		if err := a.run(ctx, o); err != nil {
			return fmt.Errorf("oplog entry %s (%s %s): %w", e.TS, e.Op, e.NS, err)
		}
	}
	return nil
}

func (a *Applier) run(ctx context.Context, o op) error {
	if o.cmd != nil {
		if err := a.Flush(ctx); err != nil {
			return err
		}
		a.Applied++
		return a.Target.Database(o.db).RunCommand(ctx, o.cmd).Err()
	}
	if o.ns != a.batchNS || len(a.batch) >= cmp.Or(a.MaxBatch, maxBatch) {
		if err := a.Flush(ctx); err != nil {
			return err
		}
	}
	a.batchNS = o.ns
	a.batch = append(a.batch, o.model)
	return nil
}

// Flush writes the pending batch.
func (a *Applier) Flush(ctx context.Context) error {
	if len(a.batch) == 0 {
		return nil
	}
	db, coll, _ := strings.Cut(a.batchNS, ".")
	_, err := a.Target.Database(db).Collection(coll).BulkWrite(ctx, a.batch, options.BulkWrite().SetOrdered(true))
	if err != nil {
		return fmt.Errorf("replay into %s: %w", a.batchNS, err)
	}
	a.Applied += int64(len(a.batch))
	a.batch, a.batchNS = a.batch[:0], ""
	return nil
}

// translate turns an entry (a top-level one or one inside applyOps) into
// what it does.
func (a *Applier) translate(raw bson.Raw) ([]op, error) {
	opType, _ := raw.Lookup("op").StringValueOK()
	ns, _ := raw.Lookup("ns").StringValueOK()
	o, ok := raw.Lookup("o").DocumentOK()
	if !ok && opType != "n" {
		return nil, errors.New("no o document")
	}
	switch opType {
	case "n":
		return nil, nil
	case "i":
		id, err := o.LookupErr("_id")
		if err != nil {
			return nil, errors.New("an insert without _id")
		}
		return []op{{ns: ns, model: mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).SetReplacement(o).SetUpsert(true)}}, nil
	case "u":
		o2, ok := raw.Lookup("o2").DocumentOK()
		if !ok {
			return nil, errors.New("an update without o2")
		}
		return update(ns, o2, o)
	case "d":
		return []op{{ns: ns, model: mongo.NewDeleteOneModel().SetFilter(o)}}, nil
	case "c":
		return a.command(ns, o, raw)
	}
	return nil, fmt.Errorf("op %q is not one this drkit replays", opType)
}

// update translates an update: a whole replacement document, FerretDB's
// {$v: 1, $set: <whole document>}, modifiers ($v 1 or none), or a $v 2
// diff (MongoDB 5+).
func update(ns string, filter, o bson.Raw) ([]op, error) {
	elems, err := o.Elements()
	if err != nil {
		return nil, err
	}
	if len(elems) == 0 || !strings.HasPrefix(elems[0].Key(), "$") {
		return []op{{ns: ns, model: mongo.NewReplaceOneModel().SetFilter(filter).SetReplacement(o).SetUpsert(true)}}, nil
	}
	v := int64(1)
	if vv, ok := o.Lookup("$v").AsInt64OK(); ok {
		v = vv
	}
	if v == 2 {
		diff, ok := o.Lookup("diff").DocumentOK()
		if !ok {
			return nil, errors.New("a $v 2 update without diff")
		}
		return fromDiff(ns, filter, diff)
	}
	var mods bson.D
	for _, el := range elems {
		if el.Key() != "$v" {
			mods = append(mods, bson.E{Key: el.Key(), Value: el.Value()})
		}
	}
	if set, ok := o.Lookup("$set").DocumentOK(); ok && len(mods) == 1 && set.Lookup("_id").Type != 0 {
		// FerretDB's form: the whole new document under $set.
		return []op{{ns: ns, model: mongo.NewReplaceOneModel().SetFilter(filter).SetReplacement(set).SetUpsert(true)}}, nil
	}
	return []op{{ns: ns, model: mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(mods)}}, nil
}

// fromDiff translates a $v 2 diff into $set/$unset updates, and a $push
// with $slice for each array the diff shortens (after the sets).
func fromDiff(ns string, filter, diff bson.Raw) ([]op, error) {
	var set, unset bson.D
	var truncs []bson.E
	if err := walkDiff("", diff, &set, &unset, &truncs); err != nil {
		return nil, err
	}
	var out []op
	upd := bson.D{}
	if len(set) > 0 {
		upd = append(upd, bson.E{Key: "$set", Value: set})
	}
	if len(unset) > 0 {
		upd = append(upd, bson.E{Key: "$unset", Value: unset})
	}
	if len(upd) > 0 {
		out = append(out, op{ns: ns, model: mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(upd)})
	}
	for _, t := range truncs {
		push := bson.D{{Key: "$push", Value: bson.D{{Key: t.Key, Value: bson.D{{Key: "$each", Value: bson.A{}}, {Key: "$slice", Value: t.Value}}}}}}
		out = append(out, op{ns: ns, model: mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(push)})
	}
	return out, nil
}

// walkDiff reads one level of a $v 2 diff at path prefix: u (update) and
// i (insert) set fields, d deletes them, s<field> is a nested diff; an
// array diff ("a": true) has u<index> and s<index> and l (new length).
func walkDiff(prefix string, diff bson.Raw, set, unset *bson.D, truncs *[]bson.E) error {
	elems, err := diff.Elements()
	if err != nil {
		return err
	}
	path := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	isArray := diff.Lookup("a").Type != 0
	for _, el := range elems {
		k := el.Key()
		switch {
		case k == "a":
		case k == "l" && isArray:
			n, ok := el.Value().AsInt64OK()
			if !ok {
				return fmt.Errorf("diff at %q: l is not a number", prefix)
			}
			*truncs = append(*truncs, bson.E{Key: prefix, Value: n})
		case k == "u" || k == "i":
			fields, ok := el.Value().DocumentOK()
			if !ok {
				return fmt.Errorf("diff at %q: %s is not a document", prefix, k)
			}
			fe, err := fields.Elements()
			if err != nil {
				return err
			}
			for _, f := range fe {
				*set = append(*set, bson.E{Key: path(f.Key()), Value: f.Value()})
			}
		case k == "d":
			fields, ok := el.Value().DocumentOK()
			if !ok {
				return fmt.Errorf("diff at %q: d is not a document", prefix)
			}
			fe, err := fields.Elements()
			if err != nil {
				return err
			}
			for _, f := range fe {
				*unset = append(*unset, bson.E{Key: path(f.Key()), Value: ""})
			}
		case isArray && strings.HasPrefix(k, "u"):
			if _, err := strconv.Atoi(k[1:]); err != nil {
				return fmt.Errorf("diff at %q: array entry %q", prefix, k)
			}
			*set = append(*set, bson.E{Key: path(k[1:]), Value: el.Value()})
		case strings.HasPrefix(k, "s") && len(k) > 1:
			sub, ok := el.Value().DocumentOK()
			if !ok {
				return fmt.Errorf("diff at %q: %s is not a document", prefix, k)
			}
			if err := walkDiff(path(k[1:]), sub, set, unset, truncs); err != nil {
				return err
			}
		default:
			return fmt.Errorf("diff at %q: %q is not a diff field this drkit knows", prefix, k)
		}
	}
	return nil
}

// command translates a c entry. Index builds are replayed as
// createIndexes at their commit; transactions at theirs.
func (a *Applier) command(ns string, o, raw bson.Raw) ([]op, error) {
	db, _, _ := strings.Cut(ns, ".")
	elems, err := o.Elements()
	if err != nil || len(elems) == 0 {
		return nil, errors.New("an empty command")
	}
	name := elems[0].Key()
	coll, _ := elems[0].Value().StringValueOK()
	switch name {
	case "applyOps":
		return a.applyOps(o, raw)
	case "commitTransaction":
		return a.commit(txnKey(raw))
	case "abortTransaction":
		delete(a.txns, txnKey(raw))
		return nil, nil
	case "create", "drop", "collMod", "dropIndexes", "deleteIndexes", "dropDatabase":
		return []op{{db: db, cmd: without(o, "uuid", "idIndex")}}, nil
	case "renameCollection":
		return []op{{db: "admin", cmd: without(o, "uuid", "stayTemp", "dropTarget")}}, nil
	case "createIndexes":
		spec := without(o, "createIndexes")
		return []op{{db: db, cmd: bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: bson.A{spec}}}}}, nil
	case "commitIndexBuild":
		specs := o.Lookup("indexes")
		if _, ok := specs.ArrayOK(); !ok {
			return nil, errors.New("commitIndexBuild without indexes")
		}
		return []op{{db: db, cmd: bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: specs}}}}, nil
	case "startIndexBuild", "abortIndexBuild", "emptycapped", "convertToCapped":
		return nil, nil // the build is replayed at its commit
	}
	return nil, fmt.Errorf("command %q is not one this drkit replays", name)
}

// applyOps translates an applyOps entry: its operations now, or buffered
// when it is part of a transaction that commits later (partialTxn, or
// prepare).
func (a *Applier) applyOps(o, raw bson.Raw) ([]op, error) {
	list, ok := o.Lookup("applyOps").ArrayOK()
	if !ok {
		return nil, errors.New("applyOps without its operations")
	}
	vals, err := list.Values()
	if err != nil {
		return nil, err
	}
	var inner []bson.Raw
	for _, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, errors.New("applyOps: an operation that is not a document")
		}
		inner = append(inner, d)
	}
	key := txnKey(raw)
	partial, _ := o.Lookup("partialTxn").BooleanOK()
	prepare, _ := o.Lookup("prepare").BooleanOK()
	if key != "" && (partial || prepare) {
		if a.txns == nil {
			a.txns = map[string][]bson.Raw{}
		}
		a.txns[key] = append(a.txns[key], inner...)
		return nil, nil
	}
	if key != "" {
		inner = append(a.txns[key], inner...)
		delete(a.txns, key)
	}
	return a.translateAll(inner)
}

// commit applies a prepared transaction's buffered operations.
func (a *Applier) commit(key string) ([]op, error) {
	inner := a.txns[key]
	delete(a.txns, key)
	return a.translateAll(inner)
}

func (a *Applier) translateAll(entries []bson.Raw) ([]op, error) {
	var out []op
	for _, d := range entries {
		ops, err := a.translate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, ops...)
	}
	return out, nil
}

// txnKey names an entry's transaction: its session id and txnNumber ("" for
// an entry outside one).
func txnKey(raw bson.Raw) string {
	lsid := raw.Lookup("lsid")
	txn := raw.Lookup("txnNumber")
	if lsid.Type == 0 || txn.Type == 0 {
		return ""
	}
	return string(lsid.Value) + "/" + string(txn.Value)
}

// without is d's elements but those named.
func without(d bson.Raw, names ...string) bson.D {
	elems, _ := d.Elements()
	var out bson.D
outer:
	for _, el := range elems {
		for _, n := range names {
			if el.Key() == n {
				continue outer
			}
		}
		out = append(out, bson.E{Key: el.Key(), Value: el.Value()})
	}
	return out
}
