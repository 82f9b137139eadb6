package mysql_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	binlog "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
	"github.com/drkit/drkit/storage"
)

// TestCopyThenRestoreFromTheCopy: the binlog and a snapshot exist in eu only;
// after a backup-set copy, region us restores on its own to the source's
// latest state (snapshot plus replayed binlog).
func TestCopyThenRestoreFromTheCopy(t *testing.T) {
	src, dst := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}, &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	eu, us := e.regions[0], e.regions[1]
	e.regions = []*storage.Region{eu}
	e.ship(t)
	seed(t, e.db)
	e.backup(t)
	testenv.Exec(t, e.db, "INSERT INTO shop.orders (note, amount) SELECT CONCAT('after ', seq), seq FROM shop.seq_1_to_300",
		"FLUSH BINARY LOGS", "UPDATE shop.orders SET amount = amount + 1 WHERE id % 7 = 0")
	e.waitShipped(t)
	lastCommit := time.Now()
	time.Sleep(2 * time.Second) // the copy stores the chunks well after their commits

	layout, err := snapshots.LayoutFor("mysql")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := snapshots.CopySet(context.Background(), "shop", eu, us, layout, snapshots.CopyOptions{Log: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("copy eu -> us: %v", err)
	}
	if len(rep.Backups) != 1 || rep.LogObjects == 0 {
		t.Fatalf("copy report %+v: want the snapshot and the binlog chunks", rep)
	}
	e.stop() // nothing more reaches eu or us: us must stand alone
	if _, err := mysnap.Restore(context.Background(), mysnap.RestoreOptions{Cluster: "shop", Region: us, TargetDSN: dst.DSN(""), Stop: binlog.StopAt{}, Log: testenv.Logger(t)}); err != nil {
		t.Fatalf("restore from the copy in us: %v", err)
	}
	d := dst.Open(t, "")
	for _, table := range []string{"shop.orders", "shop.audit"} {
		if got, want := fingerprint(t, d, table), fingerprint(t, e.db, table); got != want {
			t.Fatalf("%s restored from us: checksum %s, source %s", table, got, want)
		}
	}
	// The copy holds the binlog to its last commit, not to when the copy
	// stored it: transactions committed after the copy listed eu would be
	// missing from us, so a time after that commit is refused, before
	// anything loads.
	after := lastCommit.Add(time.Second + 500*time.Millisecond) // past the commit's whole second, before the copy
	dst2 := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	testenv.Start(t, dst2)
	_, err = mysnap.Restore(context.Background(), mysnap.RestoreOptions{Cluster: "shop", Region: us, TargetDSN: dst2.DSN(""), Stop: binlog.StopAt{Time: after}, Log: testenv.Logger(t)})
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "newest restorable time") {
		t.Fatalf("restore from the copy to %s, after its last commit and before the copy stored it: %v; want the time refused", after.Format("15:04:05.000"), err)
	}
}
