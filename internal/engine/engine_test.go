package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/drkit/drkit/internal/engine"
	_ "github.com/drkit/drkit/internal/engine/all"
)

func TestRegistry(t *testing.T) {
	for _, name := range []string{"postgres", "mysql", "redis", "mongodb"} {
		if _, err := engine.Lookup(name); err != nil {
			t.Errorf("engine %s is not registered: %v", name, err)
		}
	}
	if _, err := engine.Lookup("oracle"); err == nil || !strings.Contains(err.Error(), "known: mongodb, mysql, postgres, redis") {
		t.Errorf("an unknown engine: %v, want an error listing the known ones", err)
	}
	// A capability an engine lacks is named, not dispatched wrongly.
	_, err := engine.Capable[engine.Promoter]("mongodb", "promote replicas")
	var u *engine.UnsupportedError
	if !errors.As(err, &u) || err.Error() != "engine mongodb cannot promote replicas yet" {
		t.Errorf("mongodb promote: %v, want \"engine mongodb cannot promote replicas yet\"", err)
	}
	if _, err := engine.Capable[engine.Verifier]("postgres", "verify"); err != nil {
		t.Errorf("postgres verify: %v", err)
	}
	// mongodb ships, backs up, restores, probes, compares and creates replicas.
	for name, c := range map[string]func() error{
		"take base backups": func() error { _, err := engine.Capable[engine.Backuper]("mongodb", "take base backups"); return err },
		"create replicas": func() error {
			_, err := engine.Capable[engine.ReplicaCreator]("mongodb", "create replicas")
			return err
		},
	} {
		if err := c(); err != nil {
			t.Errorf("mongodb %s: %v", name, err)
		}
	}
	for _, name := range []string{"postgres", "mysql", "redis", "mongodb"} {
		if _, err := engine.Capable[engine.SyncChecker](name, "compare replicas"); err != nil {
			t.Errorf("%s sync check: %v", name, err)
		}
	}
}

func TestCheckFlags(t *testing.T) {
	err := engine.CheckFlags("mysql", map[string]string{"target-dir": "/x", "target-dsn": "u@tcp(h)/"}, []string{"target-dsn", "target-gtid"})
	if !engine.IsUsage(err) || !strings.Contains(err.Error(), "engine mysql does not take --target-dir") || !strings.Contains(err.Error(), "--target-gtid") {
		t.Errorf("CheckFlags: %v, want a usage error naming the engine, the flag and what it takes", err)
	}
	if err := engine.CheckFlags("mysql", map[string]string{"target-dsn": "x"}, []string{"target-dsn"}); err != nil {
		t.Errorf("CheckFlags of taken flags: %v", err)
	}
}
