package mysql

import (
	"context"

	"fmt"
	"hash/fnv"
	"net"
	"strings"

	driver "github.com/go-sql-driver/mysql"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/replication"
	myrepl "github.com/drkit/drkit/replication/mysql"
)

var _ engine.Configured = Engine{}

// ConfigRules implements engine.Configured: go-sql-driver's DSN form, a
// server_id derived from the cluster's name, the heartbeat in its own
// database.
func (Engine) ConfigRules() config.EngineRules {
	return config.EngineRules{
		CheckDSN: func(dsn string) error {
			if _, err := driver.ParseDSN(dsn); err != nil {
				return fmt.Errorf("is not a MySQL DSN (user:password@tcp(host:3306)/): %w", err)
			}
			return nil
		},
		ParseDSN: parseDSN,
		Sync:     true,
		Defaults: func(cl *config.Cluster) {
			if cl.ServerID == 0 {
				// Stable across restarts, and in the upper half of the id space,
				// which server configs rarely use.
				h := fnv.New32a()
				h.Write([]byte(cl.Name))
				cl.ServerID = 1<<31 + h.Sum32()%(1<<30)
			}
			if cl.Monitor.Heartbeat.Table == "" {
				cl.Monitor.Heartbeat.Table = "drkit.heartbeat"
			}
		},
		SyncCheck:   true,
		Drill:       true,
		DrillTarget: true,
	}
}

// parseDSN reads go-sql-driver's "user:password@tcp(host:3306)/db?tls=…"
// form: the host, and how strictly its tls parameter checks the server.
func parseDSN(dsn string) (host string, tls int, ok bool) {
	if strings.Contains(dsn, "://") {
		return "", 0, false
	}
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return "", 0, false
	}
	host = cfg.Addr
	if h, _, err := net.SplitHostPort(cfg.Addr); err == nil {
		host = h
	}
	switch cfg.TLSConfig {
	case "", "false":
	case "skip-verify", "preferred":
		tls = 1
	default: // "true" or a registered custom TLS config
		tls = 2
	}
	return host, tls, true
}

var _ engine.SyncChecker = Engine{}

// SyncCheck implements engine.SyncChecker: tables compared by key range,
// the heartbeat table left out.
func (Engine) SyncCheck(ctx context.Context, cl config.Cluster, primaryDSN string, r config.Replica, opts replication.Checker) (replication.Report, error) {
	opts.Skip = []string{cl.Monitor.Heartbeat.Table}
	return myrepl.SyncCheck(ctx, primaryDSN, r.DSN, opts)
}
