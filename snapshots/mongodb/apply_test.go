package mongodb

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// These are oplog entries as MongoDB 6/7/8 writes them (see the server's
// docs/oplog and src/mongo/db/repl/oplog_entry.idl), written out here: no
// mongod can run on these machines. They test the translation; replaying
// into a server is tested on FerretDB (restore_test.go).

var (
	uuid = bson.Binary{Subtype: 4, Data: []byte("0123456789abcdef")}
	lsid = bson.D{{Key: "id", Value: uuid}, {Key: "uid", Value: bson.Binary{Data: []byte("u")}}}
)

func entry(t *testing.T, fields ...bson.E) bson.Raw {
	t.Helper()
	d := bson.D{{Key: "ts", Value: bson.Timestamp{T: 1700000000, I: 1}}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)},
		{Key: "wall", Value: bson.NewDateTimeFromTime(time.Unix(1700000000, 0))}, {Key: "ui", Value: uuid}}
	d = append(d, fields...)
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func doc(kv ...any) bson.D {
	var d bson.D
	for i := 0; i < len(kv); i += 2 {
		d = append(d, bson.E{Key: kv[i].(string), Value: kv[i+1]})
	}
	return d
}

// describe renders ops for comparison: ns and model or db and command, as
// extended JSON.
func describe(t *testing.T, ops []op) string {
	t.Helper()
	js := func(v any) string {
		b, err := bson.MarshalExtJSON(v, false, false)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	wrap := func(v any) any { return doc("x", v) }
	var out []string
	for _, o := range ops {
		switch m := o.model.(type) {
		case *mongo.ReplaceOneModel:
			out = append(out, fmt.Sprintf("%s replace %s %s upsert=%v", o.ns, js(m.Filter), js(m.Replacement), *m.Upsert))
		case *mongo.UpdateOneModel:
			out = append(out, fmt.Sprintf("%s update %s %s", o.ns, js(m.Filter), js(wrap(m.Update))))
		case *mongo.DeleteOneModel:
			out = append(out, fmt.Sprintf("%s delete %s", o.ns, js(m.Filter)))
		case nil:
			out = append(out, fmt.Sprintf("%s command %s", o.db, js(o.cmd)))
		}
	}
	return strings.Join(out, "\n")
}

func TestTranslateEntries(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    []bson.E
		want string
	}{
		{"insert", []bson.E{{Key: "op", Value: "i"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: doc("_id", 1, "a", 1)}, {Key: "o2", Value: doc("_id", 1)}},
			`app.c replace {"_id":1} {"_id":1,"a":1} upsert=true`},
		{"replacement", []bson.E{{Key: "op", Value: "u"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: doc("_id", 1, "a", 5)}, {Key: "o2", Value: doc("_id", 1)}},
			`app.c replace {"_id":1} {"_id":1,"a":5} upsert=true`},
		{"v2 diff", []bson.E{{Key: "op", Value: "u"}, {Key: "ns", Value: "app.c"}, {Key: "o2", Value: doc("_id", 1)},
			{Key: "o", Value: doc("$v", 2, "diff", doc("u", doc("a", 2), "i", doc("b", 3), "d", doc("c", false), "sx", doc("u", doc("y", 1))))}},
			`app.c update {"_id":1} {"x":{"$set":{"a":2,"b":3,"x.y":1},"$unset":{"c":""}}}`},
		{"v2 array diff", []bson.E{{Key: "op", Value: "u"}, {Key: "ns", Value: "app.c"}, {Key: "o2", Value: doc("_id", 1)},
			{Key: "o", Value: doc("$v", 2, "diff", doc("sarr", doc("a", true, "u1", 5, "s2", doc("u", doc("k", "v")), "l", 3)))}},
			`app.c update {"_id":1} {"x":{"$set":{"arr.1":5,"arr.2.k":"v"}}}` + "\n" +
				`app.c update {"_id":1} {"x":{"$push":{"arr":{"$each":[],"$slice":3}}}}`},
		{"v1 modifiers", []bson.E{{Key: "op", Value: "u"}, {Key: "ns", Value: "app.c"}, {Key: "o2", Value: doc("_id", 1)},
			{Key: "o", Value: doc("$v", 1, "$set", doc("a", 1), "$unset", doc("b", true))}},
			`app.c update {"_id":1} {"x":{"$set":{"a":1},"$unset":{"b":true}}}`},
		{"FerretDB whole document", []bson.E{{Key: "op", Value: "u"}, {Key: "ns", Value: "app.c"}, {Key: "o2", Value: doc("_id", 1)},
			{Key: "o", Value: doc("$v", 1, "$set", doc("_id", 1, "v", "b"))}},
			`app.c replace {"_id":1} {"_id":1,"v":"b"} upsert=true`},
		{"delete", []bson.E{{Key: "op", Value: "d"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: doc("_id", 1)}},
			`app.c delete {"_id":1}`},
		{"noop", []bson.E{{Key: "op", Value: "n"}, {Key: "ns", Value: ""}, {Key: "o", Value: doc("msg", "periodic noop")}}, ``},
		{"create", []bson.E{{Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"}, {Key: "o", Value: doc("create", "c2", "idIndex", doc("v", 2, "key", doc("_id", 1), "name", "_id_"))}},
			`app command {"create":"c2"}`},
		{"drop", []bson.E{{Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"}, {Key: "o", Value: doc("drop", "c2")}, {Key: "o2", Value: doc("numRecords", 3)}},
			`app command {"drop":"c2"}`},
		{"rename", []bson.E{{Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"}, {Key: "o", Value: doc("renameCollection", "app.a", "to", "app.b", "stayTemp", false, "uuid", uuid)}},
			`admin command {"renameCollection":"app.a","to":"app.b"}`},
		{"createIndexes", []bson.E{{Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"}, {Key: "o", Value: doc("createIndexes", "c", "v", 2, "key", doc("a", 1), "name", "a_1")}},
			`app command {"createIndexes":"c","indexes":[{"v":2,"key":{"a":1},"name":"a_1"}]}`},
		{"index build", []bson.E{{Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"},
			{Key: "o", Value: doc("commitIndexBuild", "c", "indexBuildUUID", uuid, "indexes", bson.A{doc("v", 2, "key", doc("b", 1), "name", "b_1")})}},
			`app command {"createIndexes":"c","indexes":[{"v":2,"key":{"b":1},"name":"b_1"}]}`},
		{"start index build", []bson.E{{Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"}, {Key: "o", Value: doc("startIndexBuild", "c", "indexBuildUUID", uuid)}}, ``},
		{"applyOps", []bson.E{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: int64(3)},
			{Key: "o", Value: doc("applyOps", bson.A{
				doc("op", "i", "ns", "app.c", "ui", uuid, "o", doc("_id", 2)),
				doc("op", "u", "ns", "app.d", "ui", uuid, "o", doc("$v", 2, "diff", doc("u", doc("a", 1))), "o2", doc("_id", 1)),
			})}},
			`app.c replace {"_id":2} {"_id":2} upsert=true` + "\n" + `app.d update {"_id":1} {"x":{"$set":{"a":1}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Applier{}
			ops, err := a.translate(entry(t, tc.e...))
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(t, ops); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// A large transaction's partialTxn entries are applied at the applyOps
// that ends the chain; a prepared one at commitTransaction; an aborted one
// never.
func TestTranslateTransactions(t *testing.T) {
	a := &Applier{}
	txn := func(n int64, fields ...bson.E) bson.Raw {
		return entry(t, append([]bson.E{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: n}}, fields...)...)
	}
	ins := func(id int) bson.D { return doc("op", "i", "ns", "app.c", "ui", uuid, "o", doc("_id", id)) }
	steps := []struct {
		e    bson.Raw
		want string
	}{
		{txn(1, bson.E{Key: "o", Value: doc("applyOps", bson.A{ins(1)}, "partialTxn", true)}), ``},
		{txn(1, bson.E{Key: "o", Value: doc("applyOps", bson.A{ins(2)}, "partialTxn", true)}), ``},
		{txn(1, bson.E{Key: "o", Value: doc("applyOps", bson.A{ins(3)}, "count", int64(3))}),
			"app.c replace {\"_id\":1} {\"_id\":1} upsert=true\napp.c replace {\"_id\":2} {\"_id\":2} upsert=true\napp.c replace {\"_id\":3} {\"_id\":3} upsert=true"},
		{txn(2, bson.E{Key: "o", Value: doc("applyOps", bson.A{ins(4)}, "prepare", true)}), ``},
		{txn(2, bson.E{Key: "o", Value: doc("abortTransaction", 1)}), ``},
		{txn(3, bson.E{Key: "o", Value: doc("applyOps", bson.A{ins(5)}, "prepare", true)}), ``},
		{txn(3, bson.E{Key: "o", Value: doc("commitTransaction", 1, "commitTimestamp", bson.Timestamp{T: 1700000001})}), `app.c replace {"_id":5} {"_id":5} upsert=true`},
	}
	for i, s := range steps {
		ops, err := a.translate(s.e)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := describe(t, ops); got != s.want {
			t.Errorf("step %d: got\n%s\nwant\n%s", i, got, s.want)
		}
	}
	if len(a.txns) != 0 {
		t.Errorf("%d transaction(s) still buffered after their commit or abort", len(a.txns))
	}
}

func TestTranslateRefusesWhatItDoesNotKnow(t *testing.T) {
	for _, e := range [][]bson.E{
		{{Key: "op", Value: "x"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: doc("_id", 1)}},
		{{Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"}, {Key: "o", Value: doc("shutdown", 1)}},
		{{Key: "op", Value: "i"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: doc("a", 1)}},
		{{Key: "op", Value: "u"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: doc("$v", 2, "diff", doc("zz", 1))}, {Key: "o2", Value: doc("_id", 1)}},
	} {
		if _, err := (&Applier{}).translate(entry(t, e...)); err == nil {
			t.Errorf("%v: translated, want a refusal", e)
		}
	}
}
