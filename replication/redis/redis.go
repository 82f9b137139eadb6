package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/redisinfo"
	"github.com/drkit/drkit/replication"
)

// CopyBytesPerSecond is the cross-region bandwidth assumed for a full copy
// when sizing the replica output buffer.
const CopyBytesPerSecond = 10 << 20

// CreateOptions say which replica to make.
type CreateOptions struct {
	Cluster config.Cluster
	Name    string
	// Region is where the replica runs.
	Region string
	// DSN is the replica server's redis:// URL.
	DSN     string
	Catalog *replication.Catalog
	// Force skips the backlog and buffer sizing checks.
	Force bool
	// Wait bounds the wait for the first full copy (default 5m).
	Wait time.Duration
	Log  *slog.Logger
}

// CreateResult says what Create did.
type CreateResult struct {
	Record   replication.Record `json:"replica"`
	Existing bool               `json:"existing"`
	Warnings []string           `json:"warnings,omitempty"`
}

func client(dsn string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(dsn)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", config.RedactDSN(dsn), err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.MaxRetries = 5*time.Second, 10*time.Second, 1
	return goredis.NewClient(opt), nil
}

// connect returns a client that has answered PING.
func connect(ctx context.Context, what, dsn string) (*goredis.Client, error) {
	c, err := client(dsn)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s %s: %w (check the address and password)", what, config.RedactDSN(dsn), err)
	}
	return c, nil
}

// Create makes the server at o.DSN a replica of the cluster's primary; see
// the package doc. Running it again on a replica of the same primary only
// waits for its link. Every refusal comes before anything is changed.
func Create(ctx context.Context, o CreateOptions) (CreateResult, error) {
	if err := replication.CheckName(o.Name); err != nil {
		return CreateResult{}, err
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	host, port, err := hostPort(o.Cluster.DSN)
	if err != nil {
		return CreateResult{}, err
	}
	rep, err := connect(ctx, "replica", o.DSN)
	if err != nil {
		return CreateResult{}, err
	}
	defer rep.Close()
	prim, err := connect(ctx, "primary", o.Cluster.DSN)
	if err != nil {
		return CreateResult{}, fmt.Errorf("%w; the replica was not changed", err)
	}
	defer prim.Close()
	rec := replication.Record{Cluster: o.Cluster.Name, Name: o.Name, Engine: "redis", Region: o.Region, DSN: o.DSN,
		Mode: "replicaof", Status: replication.RecordCreating, Created: time.Now().UTC()}
	ri, err := redisinfo.Get(ctx, rep, "replication")
	if err != nil {
		return CreateResult{}, fmt.Errorf("replica: %w", err)
	}
	if ri["role"] == "slave" {
		if ri["master_host"] != host || ri["master_port"] != port {
			return CreateResult{}, fmt.Errorf("replica %s already replicates from %s:%s, not from cluster %s's primary %s:%s; nothing was changed",
				config.RedactDSN(o.DSN), ri["master_host"], ri["master_port"], o.Cluster.Name, host, port)
		}
		if err := waitLink(ctx, rep, o.Wait); err != nil {
			return CreateResult{}, err
		}
		rec.Status = replication.RecordReady
		return CreateResult{Record: rec, Existing: true}, o.Catalog.Put(ctx, rec)
	}
	if err := checkTarget(ctx, prim, rep); err != nil {
		return CreateResult{}, err
	}
	warnings, err := checkSizing(ctx, prim, "a cross-region replica", "--force creates it anyway")
	if err != nil && !o.Force {
		return CreateResult{}, err
	}
	if err != nil {
		warnings = append(warnings, err.Error())
	}
	if err := o.Catalog.Put(ctx, rec); err != nil {
		return CreateResult{}, fmt.Errorf("register replica %s: %w", o.Name, err)
	}
	if err := replicaOf(ctx, rep, o.Cluster.DSN, host, port); err != nil {
		return CreateResult{}, o.Catalog.Failed(ctx, rec, err)
	}
	if err := waitLink(ctx, rep, o.Wait); err != nil {
		return CreateResult{}, o.Catalog.Failed(ctx, rec, err)
	}
	rec.Status = replication.RecordReady
	return CreateResult{Record: rec, Warnings: warnings}, o.Catalog.Put(ctx, rec)
}

// checkTarget refuses a replica that holds keys (REPLICAOF would discard
// them) or runs an older major version than the primary.
func checkTarget(ctx context.Context, prim, rep *goredis.Client) error {
	ks, err := redisinfo.Get(ctx, rep, "keyspace")
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	for db, v := range ks {
		if strings.HasPrefix(db, "db") {
			return fmt.Errorf("the replica is not empty (%s: %s): REPLICAOF would discard its keys; use an empty server (or FLUSHALL it yourself); nothing was changed", db, v)
		}
	}
	ps, err := redisinfo.Get(ctx, prim, "server")
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	rs, err := redisinfo.Get(ctx, rep, "server")
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	if major(rs["redis_version"]) < major(ps["redis_version"]) {
		return fmt.Errorf("the replica runs Redis %s, older than the primary's %s: a replica must run the same or a newer major version; nothing was changed", rs["redis_version"], ps["redis_version"])
	}
	return nil
}

// major is the major number of a "7.0.15" version.
func major(version string) int {
	n, _ := strconv.Atoi(strings.SplitN(version, ".", 2)[0])
	return n
}

// CheckSizing checks the backlog and replica output buffer of the primary
// at dsn against its write rate, as Create does: drd's stream is a replica
// too, and a backlog shorter than a drd restart means a full resync.
func CheckSizing(ctx context.Context, dsn string) error {
	c, err := connect(ctx, "primary", dsn)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = checkSizing(ctx, c, "drd's stream to survive a drd restart without a full resync", "drd ships the stream anyway")
	return err
}

// checkSizing compares the primary's backlog and replica output buffer with
// its write rate (see the package doc). The error names what the settings
// are for and what happens if nothing is changed (after).
func checkSizing(ctx context.Context, prim *goredis.Client, what, after string) ([]string, error) {
	st, err := redisinfo.Get(ctx, prim, "stats")
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	mem, err := redisinfo.Get(ctx, prim, "memory")
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	cfg, err := prim.ConfigGet(ctx, "*").Result()
	if err != nil {
		return nil, fmt.Errorf("primary: CONFIG GET: %w (checking the replication settings for %s needs the +config|get ACL command; %s)", err, what, after)
	}
	kbps, _ := strconv.ParseFloat(st["instantaneous_input_kbps"], 64)
	rate := kbps * 1024
	dataset, _ := strconv.ParseFloat(mem["used_memory_dataset"], 64)
	backlog, _ := strconv.ParseFloat(cfg["repl-backlog-size"], 64)
	hard := replicaHardLimit(cfg["client-output-buffer-limit"])
	needBacklog := max(1<<20, rate*60)
	needBuffer := rate * (dataset/CopyBytesPerSecond + 10)
	var problems []string
	if backlog < needBacklog {
		problems = append(problems, fmt.Sprintf("repl-backlog-size is %.0f bytes but a minute of the primary's writes (%.0f B/s) needs %.0f: CONFIG SET repl-backlog-size %.0f on the primary",
			backlog, rate, needBacklog, needBacklog))
	}
	if hard > 0 && hard < needBuffer {
		problems = append(problems, fmt.Sprintf("the replica output buffer hard limit is %.0f bytes but the writes made during a full copy of %.0f bytes need %.0f: CONFIG SET client-output-buffer-limit \"replica %.0f %.0f 60\" on the primary",
			hard, dataset, needBuffer, needBuffer, needBuffer/2))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("the primary's replication settings are too small for %s (%s): %s", what, after, strings.Join(problems, "; "))
	}
	return nil, nil
}

// replicaHardLimit reads the replica class's hard limit from
// client-output-buffer-limit ("normal 0 0 0 slave 268435456 67108864 60 ...").
func replicaHardLimit(v string) float64 {
	f := strings.Fields(v)
	for i := 0; i+3 < len(f); i += 4 {
		if f[i] == "slave" || f[i] == "replica" {
			n, _ := strconv.ParseFloat(f[i+1], 64)
			return n
		}
	}
	return 0
}

func hostPort(dsn string) (string, string, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("primary dsn %s: want redis://[user:password@]host:port", config.RedactDSN(dsn))
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return u.Host, "6379", nil
	}
	return host, port, nil
}

// replicaOf sets the replica's credentials toward the primary and starts
// replication.
func replicaOf(ctx context.Context, rep *goredis.Client, primaryDSN, host, port string) error {
	u, _ := url.Parse(primaryDSN)
	if pw, ok := u.User.Password(); ok {
		if err := rep.ConfigSet(ctx, "masterauth", pw).Err(); err != nil {
			return fmt.Errorf("replica: CONFIG SET masterauth: %w", err)
		}
		if user := u.User.Username(); user != "" && user != "default" {
			if err := rep.ConfigSet(ctx, "masteruser", user).Err(); err != nil {
				return fmt.Errorf("replica: CONFIG SET masteruser: %w", err)
			}
		}
	}
	if err := rep.ReplicaOf(ctx, host, port).Err(); err != nil {
		return fmt.Errorf("replica: REPLICAOF %s %s: %w", host, port, err)
	}
	return nil
}

// waitLink waits until the replica's link is up and its first sync is done.
func waitLink(ctx context.Context, rep *goredis.Client, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ri, err := redisinfo.Get(ctx, rep, "replication")
		if err != nil {
			return fmt.Errorf("replica: %w", err)
		}
		if ri["master_link_status"] == "up" && ri["master_sync_in_progress"] == "0" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica: link to %s:%s not up after %s (master_link_status %s; see the replica's log, for example a wrong masterauth)",
				ri["master_host"], ri["master_port"], within, ri["master_link_status"])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PromoteOptions say which replica becomes the primary.
type PromoteOptions = replication.PromoteOptions

// Promote makes o.Replica the primary; see the package doc.
func Promote(ctx context.Context, o PromoteOptions) (replication.PromoteResult, error) {
	o = o.WithDefaults()
	res := o.Result()
	rep, err := connect(ctx, "replica "+o.Replica.Name, o.Replica.DSN)
	if err != nil {
		return res, err
	}
	defer rep.Close()
	ri, err := redisinfo.Get(ctx, rep, "replication")
	if err != nil {
		return res, fmt.Errorf("replica: %w", err)
	}
	if ri["role"] != "slave" {
		return res, fmt.Errorf("%s is not a replica (role %s): it may have been promoted already", o.Replica.Name, ri["role"])
	}
	res.ReplicaPosition = "offset " + ri["slave_repl_offset"]
	old, oldErr := connect(ctx, "old primary", o.PrimaryDSN)
	if oldErr == nil {
		defer old.Close()
		if err := drain(ctx, old, rep, o.Wait, &res); err != nil {
			return res, err
		}
	} else {
		res.FenceNote = "not reachable: " + oldErr.Error() + "; writes it took after replica offset " + ri["slave_repl_offset"] + " are lost (Redis keeps no log in the stores)"
	}
	if err := rep.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		return res, fmt.Errorf("replica: REPLICAOF NO ONE: %w", err)
	}
	if oldErr == nil {
		host, port, err := hostPort(o.Replica.DSN)
		if u, _ := url.Parse(o.Replica.DSN); err == nil && u != nil {
			if pw, ok := u.User.Password(); ok {
				err = old.ConfigSet(ctx, "masterauth", pw).Err()
			}
		}
		if err == nil {
			err = old.ReplicaOf(ctx, host, port).Err()
		}
		if err == nil {
			// A replica refuses writes by itself; the pause would also hold
			// back what it applies from the new primary.
			err = old.Do(ctx, "CLIENT", "UNPAUSE").Err()
		}
		if err != nil {
			res.FenceNote += "; making it a replica of the new primary failed: " + err.Error()
		} else {
			res.Promotion.Fenced = true
			res.FenceNote += "; it is now a replica of the new primary (read-only)"
		}
	}
	pi, err := redisinfo.Get(ctx, rep, "replication")
	if err != nil {
		return res, fmt.Errorf("promoted replica: %w", err)
	}
	res.Promotion.Position = "replid " + pi["master_replid"] + " offset " + pi["master_repl_offset"]
	res.Promotion.At = time.Now().UTC()
	res.ClientChange = fmt.Sprintf("point writers at %s (a primary now)", config.RedactDSN(o.Replica.DSN))
	return res, nil
}

// drain pauses writes on the old primary and waits until the replica has its
// last offset.
func drain(ctx context.Context, old, rep *goredis.Client, within time.Duration, res *replication.PromoteResult) error {
	pause := within + 30*time.Second
	if err := old.Do(ctx, "CLIENT", "PAUSE", strconv.FormatInt(pause.Milliseconds(), 10), "WRITE").Err(); err != nil {
		return fmt.Errorf("old primary: CLIENT PAUSE WRITE: %w", err)
	}
	oi, err := redisinfo.Get(ctx, old, "replication")
	if err != nil {
		return fmt.Errorf("old primary: %w", err)
	}
	want, _ := strconv.ParseInt(oi["master_repl_offset"], 10, 64)
	res.StorePosition = "old primary offset " + oi["master_repl_offset"]
	deadline := time.Now().Add(within)
	for {
		ri, err := redisinfo.Get(ctx, rep, "replication")
		if err != nil {
			return fmt.Errorf("replica: %w", err)
		}
		have, _ := strconv.ParseInt(ri["slave_repl_offset"], 10, 64)
		res.ReplicaPosition = "offset " + ri["slave_repl_offset"]
		if have >= want {
			res.FenceNote = "writes paused at offset " + oi["master_repl_offset"] + ", which the replica has"
			return nil
		}
		if time.Now().After(deadline) {
			_ = old.Do(ctx, "CLIENT", "UNPAUSE").Err()
			return errors.New("the replica did not reach the old primary's offset " + oi["master_repl_offset"] + " within " + within.String() + " (it has " + ri["slave_repl_offset"] + "); writes were resumed on the old primary; nothing was promoted")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
