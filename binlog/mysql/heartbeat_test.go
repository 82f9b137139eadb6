package mysql

import (
	"context"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

// TestShipperHoldsBackHeartbeats: binlog that holds only drd's heartbeat
// transactions waits up to the heartbeat's flush interval, while a user's
// transaction among them ships within the normal flush interval.
func TestShipperHoldsBackHeartbeats(t *testing.T) {
	m := testenv.StartMariaDB(t)
	db := m.Open(t, "")
	testenv.Exec(t, db,
		"CREATE DATABASE drkit", "CREATE TABLE drkit.heartbeat (cluster VARCHAR(64) NOT NULL PRIMARY KEY, beat_us BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY) ENGINE=InnoDB")
	cat := fileCatalog(t, "eu")
	sh, _ := startShipperWith(t, m, HeartbeatTable{DB: "drkit", Table: "heartbeat", FlushInterval: 4 * time.Second}, cat)
	beat := func(n int) Pos {
		testenv.Exec(t, db, "INSERT INTO drkit.heartbeat VALUES ('shop', "+itoa(n)+") ON DUPLICATE KEY UPDATE beat_us = VALUES(beat_us)")
		return gtidPos(t, db, "gtid_binlog_pos")
	}
	chunks := func() int {
		refs, err := cat.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(refs)
	}
	testenv.Exec(t, db, "INSERT INTO shop.t VALUES (0)")
	waitShipped(t, sh, gtidPos(t, db, "gtid_binlog_pos"))

	before := chunks()
	var last Pos
	for i := range 10 {
		last = beat(i + 1)
		time.Sleep(200 * time.Millisecond)
	}
	if n := chunks(); n != before {
		t.Errorf("heartbeat-only binlog was shipped within 2 s (%d chunks -> %d); it may wait 4 s", before, n)
	}
	began := time.Now()
	waitShipped(t, sh, last)
	t.Logf("10 heartbeats over 2 s were held back and shipped %s later, in %d chunk(s)", time.Since(began), chunks()-before)
	if chunks()-before != 1 {
		t.Errorf("the heartbeats came in %d chunks, want 1", chunks()-before)
	}

	// A user's transaction among heartbeats ships within the flush interval.
	beat(100)
	testenv.Exec(t, db, "INSERT INTO shop.t VALUES (1)")
	user := gtidPos(t, db, "gtid_binlog_pos")
	beat(101)
	began = time.Now()
	waitShipped(t, sh, user)
	if took := time.Since(began); took > time.Second {
		t.Errorf("a user's transaction among heartbeats took %s to ship; flush_interval is 200ms", took)
	}
}
