package main

import (
	"strings"
	"testing"
)

// Commands dispatch through the engine registry: a capability an engine
// lacks is refused by name, and a flag only another engine takes is named
// with what the engine expected, before anything is touched.
func TestEngineDispatch(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, "regions:\n  - {name: a, store: 'file://"+dir+"'}\n"+
		"clusters:\n"+
		"  - {name: cache, engine: redis, region: a, dsn: 'redis://127.0.0.1:1/0'}\n"+
		"  - {name: docs, engine: mongodb, region: a, dsn: 'mongodb://127.0.0.1:1/'}\n"+
		"  - {name: shop, engine: mysql, region: a, dsn: 'root@tcp(127.0.0.1:1)/', server_id: 4242}\n"+
		"  - {name: orders, engine: postgres, region: a, dsn: 'postgres://u@127.0.0.1:1/db'}\n")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"promote", "--cluster", "docs", "--region", "a"}, "engine mongodb cannot promote replicas yet"},
		{[]string{"restore", "--cluster", "docs"}, "give --target-dsn: an empty MongoDB server"},
		{[]string{"restore", "--cluster", "cache", "--target-lsn", "0/1"}, "engine redis does not take --target-lsn (its restore flags: --target-dsn, --target-dir, --replay-listen)"},
		{[]string{"restore", "--cluster", "cache"}, "give --target-dsn (an empty Redis, redis://host:6379) or --target-dir"},
		{[]string{"restore", "--cluster", "shop", "--target-dir", dir}, "engine mysql does not take --target-dir (its restore flags: --target-dsn"},
		{[]string{"restore", "--cluster", "orders", "--target-dir", dir, "--target-gtid", "0-1-2"}, "engine postgres does not take --target-gtid"},
		{[]string{"restore", "--cluster", "orders"}, "--target-dir is required"},
		{[]string{"replica", "create", "--cluster", "shop", "--region", "a", "--dsn", "root@tcp(h:1)/", "--data-dir", dir}, "engine mysql does not take --data-dir"},
	}
	for _, c := range cases {
		code, _, errOut := drctl(t, append(c.args, "--config", cfg)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("drctl %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, errOut, exitUsage, c.want)
		}
	}
	// As restore_command, any refusal aborts recovery (127), named.
	code, _, errOut := drctl(t, "wal-fetch", "--cluster", "shop", "x", "y", "--config", cfg)
	if code != exitWALAbort || !strings.Contains(errOut, "engine mysql cannot serve as restore_command yet") {
		t.Errorf("wal-fetch of a mysql cluster: exit %d, stderr %q", code, errOut)
	}
}
