package mongodb

import (
	"bytes"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// rsConfig is replSetGetConfig's config as MongoDB 7 returns it for a
// three-member set with a hidden delayed member, written out here: no
// mongod can run on these machines.
func rsConfig(t *testing.T) bson.Raw {
	t.Helper()
	member := func(id int, host string, prio float64, extra ...bson.E) bson.D {
		return append(bson.D{{Key: "_id", Value: int32(id)}, {Key: "host", Value: host}, {Key: "arbiterOnly", Value: false},
			{Key: "buildIndexes", Value: true}, {Key: "hidden", Value: false}, {Key: "priority", Value: prio},
			{Key: "tags", Value: bson.D{}}, {Key: "secondaryDelaySecs", Value: int64(0)}, {Key: "votes", Value: int32(1)}}, extra...)
	}
	delayed := member(2, "db3.eu:27017", 0)
	delayed[4].Value, delayed[7].Value = true, int64(3600)
	b, err := bson.Marshal(bson.D{
		{Key: "_id", Value: "rs0"}, {Key: "version", Value: int32(7)}, {Key: "term", Value: int32(3)},
		{Key: "members", Value: bson.A{member(0, "db1.eu:27017", 2), member(1, "db2.eu:27017", 1), delayed}},
		{Key: "protocolVersion", Value: int64(1)}, {Key: "writeConcernMajorityJournalDefault", Value: true},
		{Key: "settings", Value: bson.D{{Key: "chainingAllowed", Value: true}, {Key: "heartbeatIntervalMillis", Value: int32(2000)},
			{Key: "electionTimeoutMillis", Value: int32(10000)}, {Key: "replicaSetId", Value: bson.NewObjectID()}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// addMember keeps every field of the config and of its members that drkit
// does not set, bumps the version and adds a non-voting, unelectable member
// with the next _id; a host already there, in any case, is refused.
func TestAddMember(t *testing.T) {
	raw := rsConfig(t)
	var cfg bson.D
	if err := bson.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	next, m, err := addMember(ReplSetConfig(cfg), "db1.us:27017", "us")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != 3 || m.Votes != 0 || m.Priority != 0 || m.Tags["drkit_region"] != "us" {
		t.Fatalf("new member %+v", m)
	}
	b, err := bson.Marshal(next)
	if err != nil {
		t.Fatal(err)
	}
	// The new config is the old one, byte for byte, but for the version and
	// the member appended.
	var want bson.D
	if err := bson.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	want[1].Value = int32(8)
	want[3].Value = append(want[3].Value.(bson.A), bson.D{{Key: "_id", Value: int32(3)}, {Key: "host", Value: "db1.us:27017"},
		{Key: "priority", Value: 0.0}, {Key: "votes", Value: int32(0)}, {Key: "tags", Value: bson.D{{Key: "drkit_region", Value: "us"}}}})
	wb, err := bson.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, wb) {
		t.Errorf("new config:\n%s\nwant\n%s", bson.Raw(b), bson.Raw(wb))
	}
	if n, _ := bson.Raw(raw).Lookup("members").Array().Values(); len(n) != 3 {
		t.Errorf("the old config changed: %d members", len(n))
	}
	if _, _, err := addMember(next, "DB1.us:27017", "us"); err == nil || !strings.Contains(err.Error(), "member of replica set rs0 already") {
		t.Errorf("a host already there: %v", err)
	}
}

func TestMemberHost(t *testing.T) {
	for dsn, want := range map[string]string{
		"mongodb://u:p@db1.us:27018/?authSource=admin": "db1.us:27018",
		"mongodb://db1.us/":                            "db1.us:27017",
		"mongodb://a:1,b:2/":                           "error",
		"mongodb+srv://cluster.example.com/":           "error",
	} {
		got, err := memberHost(dsn)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("memberHost(%s) = %s (%v), want %s", dsn, got, err, want)
		}
	}
}
