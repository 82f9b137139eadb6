package engine

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/internal/config"
)

// HeartbeatOn reports whether drd writes cl's heartbeat: for clusters with
// replicas (their lag) or scheduled drills (the RPO found in a restore),
// unless turned off.
func HeartbeatOn(cl config.Cluster) bool {
	return (len(cl.Replicas) > 0 || cl.Drill.Schedule != "") && !cl.Monitor.Heartbeat.Disabled
}

// URLPassword puts pw into a URL DSN (postgres://, redis://) or a
// PostgreSQL key=value DSN, unless it carries a password already.
func URLPassword(dsn, pw string) (string, error) {
	if !strings.Contains(dsn, "://") {
		if strings.Contains(dsn, "password=") {
			return dsn, nil
		}
		return dsn + " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'", nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", Usage(fmt.Errorf("the DSN is not a URL: %w", err))
	}
	if _, has := u.User.Password(); has {
		return dsn, nil
	}
	user := ""
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, pw)
	return u.String(), nil
}

// JoinNote appends note to a status row's note.
func JoinNote(have, note string) string {
	if have == "" {
		return note
	}
	return have + "; " + note
}

// SyncPolicy is cl's zero-RPO policy as the shippers take it.
func SyncPolicy(cl config.Cluster) binlog.Sync {
	if cl.Sync.Mode == "" || cl.Sync.Mode == string(binlog.SyncOff) {
		return binlog.Sync{Mode: binlog.SyncOff}
	}
	return binlog.Sync{Mode: binlog.SyncMode(cl.Sync.Mode), Regions: cl.Sync.Regions, Timeout: time.Duration(cl.Sync.Timeout)}
}
