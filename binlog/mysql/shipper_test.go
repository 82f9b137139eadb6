package mysql

import (
	"context"
	"fmt"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
)

// TestRegionBehindCatchesUp ships into two regions, then into one while the
// other is left out, then into both again. The stream restarts where the
// region behind stands; that region stores everything it lacks, the region
// ahead stores only what it lacks (not the batch's shared encoding, which
// starts earlier), and neither has a gap or a transaction twice.
func TestRegionBehindCatchesUp(t *testing.T) {
	m := testenv.StartMariaDB(t)
	db := m.Open(t, "")
	a, b := fileCatalog(t, "a"), fileCatalog(t, "b")
	mustExec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			mustExec(t, db, fmt.Sprintf("INSERT INTO shop.t VALUES (%d)", i))
		}
	}
	sh, stop := startShipper(t, m, a, b)
	insert(0, 3)
	waitShipped(t, sh, gtidPos(t, db, "gtid_binlog_pos"))
	stop()
	sh, stop = startShipper(t, m, a)
	insert(3, 6)
	waitShipped(t, sh, gtidPos(t, db, "gtid_binlog_pos"))
	stop()
	sh, stop = startShipper(t, m, a, b)
	insert(6, 8)
	want := gtidPos(t, db, "gtid_binlog_pos")
	waitShipped(t, sh, want)
	stop()

	for _, c := range []*Catalog{a, b} {
		rep, err := Verify(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) > 0 || rep.End != want.String() || rep.Txns != 8 {
			t.Errorf("region %s: %d transactions from %s up to %s, problems %q; want the 8 inserts up to %s and none",
				c.Pipeline.Region, rep.Txns, rep.First, rep.End, rep.Problems, want)
		}
	}
}

// TestEmptyRegionStartsAtTheServerPosition starts a shipper with an empty
// region on a server that purged its first binlogs, as every long-running
// server has: the region starts at the server's position then. (It used to
// start at the beginning of the server's history, which the server refuses
// once binlogs are purged: drd retried forever and shipped nothing.)
func TestEmptyRegionStartsAtTheServerPosition(t *testing.T) {
	m := testenv.StartMariaDB(t)
	db := m.Open(t, "")
	mustExec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)", "FLUSH BINARY LOGS",
		"INSERT INTO shop.t VALUES (1)")
	purgeBinlogs(t, db)
	from := gtidPos(t, db, "gtid_binlog_pos")
	c := fileCatalog(t, "a")
	sh, stop := startShipper(t, m, c)
	mustExec(t, db, "INSERT INTO shop.t VALUES (2)")
	want := gtidPos(t, db, "gtid_binlog_pos")
	waitShipped(t, sh, want)
	stop()
	rep, err := Verify(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if rep.First != from.String() || rep.End != want.String() || rep.Txns != 1 || len(rep.Problems) > 0 {
		t.Fatalf("region holds %d transactions from %q to %q (problems %q); want 1 from %q to %q", rep.Txns, rep.First, rep.End, rep.Problems, from, want)
	}
}
