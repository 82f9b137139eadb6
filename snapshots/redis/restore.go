package redis

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/redisinfo"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// RestoreOptions is one restore from one region into an empty Redis.
type RestoreOptions struct {
	Cluster string
	Region  *storage.Region
	// TargetDSN is the empty Redis the data is loaded into.
	TargetDSN string
	// Stop, if set, ends the replay before the first command received
	// after it; zero replays everything the region holds.
	Stop time.Time
	// BackupID chooses the base; "" takes the newest before Stop.
	BackupID string
	// AcceptGap restores up to a gap in the stream instead of refusing.
	AcceptGap bool
	// Listen is the address drctl serves the target from (default
	// 127.0.0.1:0): the target connects to it as to its primary.
	Listen string
	Log    *slog.Logger
	// Phase, if set, is told when the restore moves on to another phase
	// (a drill times them).
	Phase func(name string)
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	Backup   rdwal.Base  `json:"backup"`
	Reach    rdwal.Reach `json:"reach"`
	Commands int         `json:"commands_replayed"`
	// Offset is the stream offset the target now stands at.
	Offset int64 `json:"offset"`
	Keys   int64 `json:"keys"`
}

// Restore loads the newest base before the target into the empty target
// and replays the region's stream after it.
func Restore(ctx context.Context, o RestoreOptions) (RestoreResult, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	cat, chain, res, err := plan(ctx, o)
	if err != nil {
		return res, err
	}
	base := res.Backup
	target, err := openTarget(ctx, o.TargetDSN)
	if err != nil {
		return res, err
	}
	defer target.Close()
	if err := CheckEmpty(ctx, target); err != nil {
		return res, err
	}
	// A replica ignores its primary's command errors (a SELECT past its
	// databases, a module it lacks): count them, and fail if any occurred.
	errorsBefore, err := errorReplies(ctx, target)
	if err != nil {
		return res, err
	}
	o.Log.Info("restoring", "cluster", o.Cluster, "region", o.Region.Name, "backup", base.ID, "offset", base.Offset, "chunks", len(chain))
	m, err := serve(ctx, o.Listen)
	if err != nil {
		return res, err
	}
	defer m.Close()
	// Only the target may take the data: it authenticates to drctl with a
	// one-time masterauth (the listener may be on a shared address).
	restoreAuth, err := oneTimeMasterauth(ctx, target, m)
	if err != nil {
		return res, err
	}
	defer restoreAuth()
	if err := target.Do(ctx, "REPLICAOF", m.host, m.port).Err(); err != nil {
		return res, fmt.Errorf("target: REPLICAOF drctl: %w", err)
	}
	defer func() {
		// The target stays a primary of its own whatever happened.
		_ = target.Do(context.WithoutCancel(ctx), "REPLICAOF", "NO", "ONE").Err()
	}()
	rc, err := o.Region.Pipeline.Open(ctx, base.RDB)
	if err != nil {
		return res, err
	}
	defer rc.Close()
	if err := m.sync(ctx, base, rc); err != nil {
		return res, err
	}
	snapshots.Enter(o.Phase, "replay")
	res.Offset, err = cat.Replay(ctx, chain, base.Offset, o.Stop, func(c rdwal.Command) error {
		res.Commands++
		return m.send(c.RESP)
	})
	if err != nil {
		return res, err
	}
	if err := m.flush(); err != nil {
		return res, err
	}
	if err := waitApplied(ctx, target, base.Offset+m.sent); err != nil {
		return res, err
	}
	if err := target.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return res, fmt.Errorf("target: REPLICAOF NO ONE: %w", err)
	}
	res.Keys, _ = keyCount(ctx, target)
	if n, err := errorReplies(ctx, target); err != nil {
		return res, err
	} else if n > errorsBefore {
		return res, fmt.Errorf("the target refused %d of the replayed command(s) (its log names them: a database number past its `databases`, a module it lacks?): the restore is not complete", n-errorsBefore)
	}
	return res, nil
}

// plan chooses the base and the chain of chunks that rolls it forward, and
// refuses, before anything is written, a restore that cannot reach its
// target.
func plan(ctx context.Context, o RestoreOptions) (*rdwal.Catalog, []rdwal.ChunkRef, RestoreResult, error) {
	cat := &rdwal.Catalog{Pipeline: o.Region.Pipeline, Cluster: o.Cluster}
	base, err := pickBase(ctx, o)
	if err != nil {
		return nil, nil, RestoreResult{}, err
	}
	// One listing for the chain and the region's end: drd goes on
	// shipping, and a chunk listed only the second time looked like stream
	// the chain does not reach.
	refs, err := cat.List(ctx)
	if err != nil {
		return nil, nil, RestoreResult{}, err
	}
	chain, reach, err := cat.ChainOf(ctx, refs, base.ReplID, base.Offset)
	if err != nil {
		return nil, nil, RestoreResult{}, err
	}
	res := RestoreResult{Backup: base, Reach: reach}
	beyondChain(refs, chain, &res.Reach)
	return cat, chain, res, checkReach(o, base, res.Reach)
}

// pickBase returns the base to restore: the one asked for, or the newest
// whose RDB began at or before the stop time.
func pickBase(ctx context.Context, o RestoreOptions) (rdwal.Base, error) {
	list, damaged, err := rdwal.ListBases(ctx, o.Region.Pipeline, o.Cluster)
	if err != nil {
		return rdwal.Base{}, err
	}
	for _, d := range damaged {
		o.Log.Warn("skipping a damaged backup manifest", "region", o.Region.Name, "manifest", d.Key, "problem", d.Problem)
		if d.ID() == o.BackupID {
			return rdwal.Base{}, fmt.Errorf("backup %s in region %s is damaged: %s", o.BackupID, o.Region.Name, d.Problem)
		}
	}
	if o.BackupID != "" {
		list = slices.DeleteFunc(list, func(b rdwal.Base) bool { return b.ID != o.BackupID })
		if len(list) == 0 {
			return rdwal.Base{}, fmt.Errorf("region %s has no backup %s of %s (drctl backups lists them): %w", o.Region.Name, o.BackupID, o.Cluster, storage.ErrNotFound)
		}
	}
	for i := len(list) - 1; i >= 0; i-- {
		if o.Stop.IsZero() || !list[i].Time.After(o.Stop) {
			return list[i], nil
		}
	}
	if len(list) == 0 {
		return rdwal.Base{}, fmt.Errorf("region %s holds no complete base backup of cluster %s: %w", o.Region.Name, o.Cluster, storage.ErrNotFound)
	}
	return rdwal.Base{}, fmt.Errorf("region %s holds no base backup of cluster %s taken before %s (the oldest is %s of %s): %w",
		o.Region.Name, o.Cluster, o.Stop.Format(time.RFC3339Nano), list[0].ID, list[0].Time.Format(time.RFC3339), storage.ErrNotFound)
}

// beyondChain records as a gap stream the region holds past the chain's
// end that the chain does not reach (another history with no link to this
// one): a restore to the newest must not stop short of it silently.
// refs is the listing the chain was made from.
func beyondChain(refs, chain []rdwal.ChunkRef, r *rdwal.Reach) {
	if r.Gap != "" {
		return
	}
	newest, ok := rdwal.EndOf(refs)
	if !ok {
		return
	}
	if len(chain) > 0 && chain[len(chain)-1].ReplID == newest.ReplID && chain[len(chain)-1].End == newest.End {
		return
	}
	if newest.LastMS > r.EndMS {
		r.Gap = fmt.Sprintf("the region holds the stream to offset %d of history %s (last command %s), which the chain from this backup does not reach",
			newest.End, newest.ReplID, time.UnixMilli(newest.LastMS).UTC().Format(time.RFC3339Nano))
	}
}

// checkReach refuses, before anything is loaded, a restore the stream
// cannot bring to its target: a gap (unless accepted) or a target time past
// what the region holds.
func checkReach(o RestoreOptions, base rdwal.Base, r rdwal.Reach) error {
	newest := base.Time // the base holds the data of its FULLRESYNC, not of its upload's end
	if t := time.UnixMilli(r.EndMS); r.EndMS > 0 && t.After(newest) {
		newest = t
	}
	if r.DurableAt.After(newest) {
		newest = r.DurableAt
	}
	switch {
	case r.Gap != "" && (o.Stop.IsZero() && !o.AcceptGap || !o.Stop.IsZero() && o.Stop.After(newest)):
		return fmt.Errorf("region %s cannot restore %s: %s; from backup %s the stream replays to offset %d (last command %s): %w. Run drctl verify; restore from another region; or pass --accept-gap to restore up to the gap",
			o.Region.Name, o.Cluster, r.Gap, base.ID, r.End, time.UnixMilli(r.EndMS).UTC().Format(time.RFC3339Nano), snapshots.ErrGap)
	case r.Gap == "" && !o.Stop.IsZero() && o.Stop.After(newest):
		return fmt.Errorf("region %s cannot restore %s to %s: it holds the stream to %s only (the newest restorable time). Choose an earlier --target-time, or omit it to restore the newest: %w",
			o.Region.Name, o.Cluster, o.Stop.Format(time.RFC3339Nano), newest.Format(time.RFC3339Nano), storage.ErrNotFound)
	}
	return nil
}

func openTarget(ctx context.Context, dsn string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(dsn)
	if err != nil {
		return nil, fmt.Errorf("--target-dsn: %w", err)
	}
	c := goredis.NewClient(opt)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("target %s: %w", opt.Addr, err)
	}
	return c, nil
}

// checkEmpty refuses a target holding any key: the restore replaces its
// whole dataset.
// CheckEmpty refuses a target that holds any key; it changes nothing.
func CheckEmpty(ctx context.Context, c *goredis.Client) error {
	n, err := keyCount(ctx, c)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("the target holds %d key(s): a restore replaces a server's whole dataset, so it goes into an empty Redis only; nothing was changed (FLUSHALL it, or use another server)", n)
	}
	return nil
}

// errorReplies is INFO stats' unexpected_error_replies: the errors a server
// answered its primary (or AOF) with.
func errorReplies(ctx context.Context, c *goredis.Client) (int64, error) {
	st, err := redisinfo.Get(ctx, c, "stats")
	if err != nil {
		return 0, fmt.Errorf("target: %w", err)
	}
	n, _ := strconv.ParseInt(st["unexpected_error_replies"], 10, 64)
	return n, nil
}

// keyCount sums INFO keyspace's keys over every database.
func keyCount(ctx context.Context, c *goredis.Client) (int64, error) {
	ks, err := redisinfo.Get(ctx, c, "keyspace")
	if err != nil {
		return 0, fmt.Errorf("target: %w", err)
	}
	var n int64
	for _, v := range ks { // db0 → keys=3,expires=0,avg_ttl=0
		for f := range strings.SplitSeq(v, ",") {
			if k, ok := strings.CutPrefix(f, "keys="); ok {
				c, _ := strconv.ParseInt(k, 10, 64)
				n += c
			}
		}
	}
	return n, nil
}

// stallTimeout is how long the target may apply nothing before the
// restore gives up on it.
const stallTimeout = 30 * time.Second

// waitApplied waits until the target has applied the stream to offset,
// for as long as it makes progress.
func waitApplied(ctx context.Context, c *goredis.Client, offset int64) error {
	last, since := int64(-1), time.Now()
	for {
		rep, err := redisinfo.Get(ctx, c, "replication")
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		at, err := strconv.ParseInt(rep["slave_repl_offset"], 10, 64)
		if err != nil {
			at = -1
		}
		link := rep["master_link_status"]
		if at >= offset {
			return nil
		}
		if at != last {
			last, since = at, time.Now()
		}
		if time.Since(since) > stallTimeout {
			return fmt.Errorf("the target stopped applying the stream at offset %d of %d (its replication link is %s; its log says why)", at, offset, link)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// master is drctl's side of the target's replication link.
type master struct {
	token      string // the target's masterauth for this restore
	ln         net.Listener
	host, port string
	c          net.Conn
	w          *bufio.Writer
	sent       int64
	flushed    time.Time
}

func serve(ctx context.Context, listen string) (*master, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for the target's replication link: %w", listen, err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	return &master{ln: ln, host: host, port: port}, nil
}

func (m *master) Close() error {
	if m.c != nil {
		m.c.Close()
	}
	return m.ln.Close()
}

// sync accepts the target's connection, answers its handshake, and sends
// the RDB after +FULLRESYNC in the diskless form ($EOF:<mark>), which needs
// no length up front.
func (m *master) sync(ctx context.Context, base rdwal.Base, rdb io.Reader) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := m.accept(ctx, deadline)
		if err != nil {
			return err
		}
		r := bufio.NewReader(c)
		m.c, m.w = c, bufio.NewWriterSize(c, 256<<10)
		err = m.handshake(r)
		if errors.Is(err, errNotTarget) {
			// Someone else reached the listener: it gets nothing, and the
			// target may still come.
			c.Close()
			continue
		}
		if err != nil {
			return fmt.Errorf("the target's replication handshake: %w", err)
		}
		return m.sendRDB(ctx, r, base, rdb)
	}
}

// errNotTarget is a peer without the target's one-time masterauth.
var errNotTarget = errors.New("a peer that is not the target")

// accept waits for the next connection to the listener until deadline.
func (m *master) accept(ctx context.Context, deadline time.Time) (net.Conn, error) {
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() { c, err := m.ln.Accept(); ch <- accepted{c, err} }()
	select {
	case a := <-ch:
		return a.c, a.err
	case <-time.After(time.Until(deadline)):
		return nil, fmt.Errorf("the target did not connect to drctl at %s:%s within 30s (can it reach that address? --replay-listen chooses it)", m.host, m.port)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// handshake answers a replica's PING, AUTH and REPLCONFs up to its PSYNC;
// anything but PING before the one-time AUTH is errNotTarget.
func (m *master) handshake(r *bufio.Reader) error {
	authed := false
	for {
		_ = m.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		args, err := readArgs(r)
		if err != nil {
			return err
		}
		switch cmd := strings.ToLower(args[0]); {
		case cmd == "ping": // a replica PINGs before it authenticates
			m.w.WriteString("+PONG\r\n")
		case cmd == "auth" && args[len(args)-1] == m.token:
			authed = true
			m.w.WriteString("+OK\r\n")
		case !authed:
			return errNotTarget
		case cmd == "psync" || cmd == "sync":
			return nil
		default: // REPLCONF
			m.w.WriteString("+OK\r\n")
		}
		if err := m.w.Flush(); err != nil {
			return err
		}
	}
}

// sendRDB answers PSYNC with +FULLRESYNC and the base's RDB in the diskless
// form ($EOF:<mark>), which needs no length up front.
func (m *master) sendRDB(ctx context.Context, r *bufio.Reader, base rdwal.Base, rdb io.Reader) error {
	mark := make([]byte, 20)
	_, _ = rand.Read(mark)
	eof := hex.EncodeToString(mark)
	fmt.Fprintf(m.w, "+FULLRESYNC %s %d\r\n$EOF:%s\r\n", base.ReplID, base.Offset, eof)
	if _, err := io.Copy(m.w, rdb); err != nil {
		return fmt.Errorf("send the base backup to the target: %w", err)
	}
	m.w.WriteString(eof)
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("send the base backup to the target: %w", err)
	}
	return m.waitLoaded(ctx, r)
}

// oneTimeMasterauth sets a random masterauth (and no masteruser) on the
// target for this restore, and returns what puts the old ones back.
func oneTimeMasterauth(ctx context.Context, target *goredis.Client, m *master) (func(), error) {
	old, err := target.ConfigGet(ctx, "master*").Result()
	if err != nil {
		return nil, fmt.Errorf("target: CONFIG GET masterauth: %w (drctl sets a one-time masterauth so that only the target can take the data)", err)
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	m.token = hex.EncodeToString(b)
	if err := target.ConfigSet(ctx, "masteruser", "").Err(); err != nil {
		return nil, fmt.Errorf("target: CONFIG SET masteruser: %w", err)
	}
	if err := target.ConfigSet(ctx, "masterauth", m.token).Err(); err != nil {
		return nil, fmt.Errorf("target: CONFIG SET masterauth: %w", err)
	}
	return func() {
		ctx := context.WithoutCancel(ctx)
		_ = target.ConfigSet(ctx, "masterauth", old["masterauth"]).Err()
		_ = target.ConfigSet(ctx, "masteruser", old["masteruser"]).Err()
	}, nil
}

// waitLoaded waits for the target's first REPLCONF ACK: it loaded the RDB.
// A diskless transfer ends at its mark only when nothing follows it, so, as
// a Redis primary does, no command is sent before that ACK.
func (m *master) waitLoaded(ctx context.Context, r *bufio.Reader) error {
	stop := context.AfterFunc(ctx, func() { _ = m.c.SetReadDeadline(time.Now()) })
	defer stop()
	_ = m.c.SetReadDeadline(time.Time{})
	for {
		args, err := readArgs(r)
		if err != nil {
			return fmt.Errorf("waiting for the target to load the base backup: %w", err)
		}
		if len(args) >= 2 && strings.EqualFold(args[0], "replconf") && strings.EqualFold(args[1], "ack") {
			go func() { _, _ = io.Copy(io.Discard, r) }() // the target's later ACKs
			return nil
		}
	}
}

// send writes one stored command to the target.
func (m *master) send(resp []byte) error {
	if _, err := m.w.Write(resp); err != nil {
		return fmt.Errorf("send to the target: %w", err)
	}
	m.sent += int64(len(resp))
	if time.Since(m.flushed) > 500*time.Millisecond {
		// Keep the link busy: a replica drops a primary silent for
		// repl-timeout (60s), and the commands are not held back for long.
		return m.flush()
	}
	return nil
}

// flush sends what send buffered.
func (m *master) flush() error {
	m.flushed = time.Now()
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("send to the target: %w", err)
	}
	return nil
}

// readArgs reads one command the target sends (RESP array or inline).
//
// Bare newlines are skipped: a replica loading a large RDB sends them to
// keep its link to the primary alive.
func readArgs(r *bufio.Reader) ([]string, error) {
	var line string
	for line == "" {
		l, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(l, "\r\n")
	}
	if !strings.HasPrefix(line, "*") {
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil, errors.New("an empty command")
		}
		return f, nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 1 || n > 64 {
		return nil, fmt.Errorf("bad array %q", line)
	}
	args := make([]string, n)
	for i := range args {
		l, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimRight(strings.TrimPrefix(l, "$"), "\r\n"))
		if err != nil || size < 0 || size > 1<<20 {
			return nil, fmt.Errorf("bad bulk %q", l)
		}
		b := make([]byte, size+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		args[i] = string(b[:size])
	}
	return args, nil
}

// ReplayedTo is when drd received the newest command the region held for
// the restore (drill.Replayed; zero when none).
func (r RestoreResult) ReplayedTo() time.Time {
	if r.Reach.EndMS == 0 {
		return time.Time{}
	}
	return time.UnixMilli(r.Reach.EndMS)
}
