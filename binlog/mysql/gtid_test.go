package mysql

import (
	"context"
	"strings"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
)

func TestPos(t *testing.T) {
	p, err := ParsePos("1-7-3, 0-1-42")
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != "0-1-42,1-7-3" {
		t.Fatalf("String() = %q", p.String())
	}
	if !p.Contains(GTID{Domain: 0, Server: 9, Seq: 42}) || p.Contains(GTID{Domain: 0, Seq: 43}) || p.Contains(GTID{Domain: 2, Seq: 1}) {
		t.Fatal("Contains is wrong")
	}
	q, _ := ParsePos("0-1-40")
	if !p.Covers(q) || q.Covers(p) {
		t.Fatal("Covers is wrong")
	}
	if m := Min(p, q); m.String() != "0-1-40" {
		t.Fatalf("Min = %s", m)
	}
	for _, bad := range []string{"0-1", "a-b-c", "0-1-2,0-1-3"} {
		if _, err := ParsePos(bad); err == nil {
			t.Errorf("ParsePos(%q) accepted", bad)
		}
	}
}

// TestShipperNamesWhatToChange: a server the binlog cannot be shipped from
// gets an error that names the setting.
func TestShipperNamesWhatToChange(t *testing.T) {
	stmt := &testenv.MariaDB{Args: []string{"--binlog-format=STATEMENT"}}
	row := &testenv.MariaDB{}
	testenv.Start(t, stmt, row)
	_, err := checkServer(context.Background(), stmt.DSN(""), 12345)
	if err == nil || !strings.Contains(err.Error(), "binlog_format=ROW") {
		t.Fatalf("STATEMENT format: %v", err)
	}
	_, err = checkServer(context.Background(), row.DSN(""), row.ServerID)
	if err == nil || !strings.Contains(err.Error(), "server_id") {
		t.Fatalf("drd with the server's own server_id: %v", err)
	}
	if _, err := checkServer(context.Background(), row.DSN(""), 12345); err != nil {
		t.Fatalf("a good server: %v", err)
	}
}
