package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-mysql-org/go-mysql/server"
)

// connName is the replication connection a replay uses on the target, named
// so that it never touches the target's own (default) replication setup.
const connName = "drkit_restore"

// Replay applies a region's binlog to a target server by acting as its primary:
// drctl listens, the target connects with CHANGE MASTER ... MASTER_USE_GTID=
// slave_pos and its own applier replays every transaction after the target's
// gtid_slave_pos up to the replay target. See the package doc for why.
type Replay struct {
	Feed *Feed
	// Target is the server to replay into; its gtid_slave_pos must be the
	// snapshot's position (snapshots/mysql sets it).
	Target *sql.DB
	// Listen is the address the target connects back to (host:port). Empty: the
	// local address that routes to TargetHost, on a free port.
	Listen     string
	TargetHost string
	// Parallel is slave_parallel_threads during the replay (0: leave as is).
	Parallel int
	Log      *slog.Logger
}

// ReplayResult says what a replay applied.
type ReplayResult struct {
	Txns int
	Pos  Pos // the target's gtid_slave_pos afterwards
	Last *Txn
}

// Run replays and waits until the target applied the last transaction, then
// removes the replication connection.
func (r *Replay) Run(ctx context.Context) (ReplayResult, error) {
	var res ReplayResult
	ln, err := r.listen()
	if err != nil {
		return res, err
	}
	defer ln.Close()
	var targetID uint32
	if err := r.Target.QueryRowContext(ctx, "SELECT @@GLOBAL.server_id").Scan(&targetID); err != nil {
		return res, fmt.Errorf("target: read server_id: %w", err)
	}
	user, pass := "drkit_replay", randomHex(16)
	srv := &primary{feed: r.Feed, log: r.Log, user: user, pass: pass, targetID: targetID, done: make(chan struct{})}
	go srv.serve(ctx, ln)

	restore, err := r.prepareTarget(ctx)
	if err != nil {
		return res, err
	}
	defer restore()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	change := fmt.Sprintf("CHANGE MASTER '%s' TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
		connName, host, port, user, pass)
	for _, q := range []string{change, "START SLAVE '" + connName + "'"} {
		if _, err := r.Target.ExecContext(ctx, q); err != nil {
			return res, fmt.Errorf("target: %s: %w", strings.SplitN(q, " TO ", 2)[0], err)
		}
	}
	defer r.removeConnection()

	// Wait for the feed to end: then the last transaction served is known.
	select {
	case <-srv.done:
	case <-ctx.Done():
		return res, ctx.Err()
	}
	if srv.err != nil {
		return res, srv.err
	}
	res.Txns, res.Last = srv.count, srv.last
	res.Pos, err = r.waitApplied(ctx, srv)
	return res, err
}

func (r *Replay) listen() (net.Listener, error) {
	addr := r.Listen
	if addr == "" {
		ip := "127.0.0.1"
		if c, err := net.Dial("udp", net.JoinHostPort(r.TargetHost, "3306")); err == nil {
			ip = c.LocalAddr().(*net.UDPAddr).IP.String()
			c.Close()
		}
		addr = net.JoinHostPort(ip, "0")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the target's replication connection on %s: %w (set --replay-listen to an address the target can reach)", addr, err)
	}
	return ln, nil
}

// prepareTarget makes the target's applier fit for a replay and returns what
// puts its settings back.
func (r *Replay) prepareTarget(ctx context.Context) (func(), error) {
	var old int
	if r.Parallel <= 0 {
		return func() {}, nil
	}
	if err := r.Target.QueryRowContext(ctx, "SELECT @@GLOBAL.slave_parallel_threads").Scan(&old); err != nil {
		return nil, fmt.Errorf("target: read slave_parallel_threads: %w", err)
	}
	if _, err := r.Target.ExecContext(ctx, fmt.Sprintf("SET GLOBAL slave_parallel_threads=%d", r.Parallel)); err != nil {
		// Another replication connection runs: replay single-threaded.
		r.Log.Warn("replay: cannot set slave_parallel_threads; applying single-threaded", "err", err)
		return func() {}, nil
	}
	return func() {
		r.Target.Exec(fmt.Sprintf("SET GLOBAL slave_parallel_threads=%d", old))
	}, nil
}

func (r *Replay) removeConnection() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range []string{"STOP SLAVE '" + connName + "'", "RESET SLAVE '" + connName + "' ALL"} {
		if _, err := r.Target.ExecContext(ctx, q); err != nil {
			r.Log.Warn("replay: clean up the replication connection", "statement", q, "err", err)
		}
	}
}

// waitApplied polls the target until its gtid_slave_pos holds the last
// transaction served, and fails with the applier's own error if it stops.
func (r *Replay) waitApplied(ctx context.Context, srv *primary) (Pos, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		var s string
		if err := r.Target.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_slave_pos").Scan(&s); err != nil {
			return nil, fmt.Errorf("target: read gtid_slave_pos: %w", err)
		}
		pos, err := ParsePos(s)
		if err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		if srv.last == nil || pos.Contains(srv.last.GTID) {
			return pos, nil
		}
		if err := r.applierError(ctx); err != nil {
			return pos, err
		}
		if time.Since(lastLog) > 5*time.Second {
			r.Log.Info("replay: waiting for the target to apply", "applied", pos.String(), "last", srv.last.GTID.String())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return pos, ctx.Err()
		case <-tick.C:
		}
	}
}

// applierError returns the replication connection's SQL or IO error, if any.
func (r *Replay) applierError(ctx context.Context) error {
	rows, err := r.Target.QueryContext(ctx, "SHOW SLAVE '"+connName+"' STATUS")
	if err != nil {
		return fmt.Errorf("target: SHOW SLAVE STATUS: %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return errors.New("target: the replay's replication connection is gone")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return err
	}
	for i, c := range cols {
		if (c == "Last_SQL_Error" || c == "Last_IO_Error") && vals[i].String != "" {
			return fmt.Errorf("target's applier stopped: %s", vals[i].String)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// primary is the replication server side: it answers the handful of queries a
// MariaDB replica sends before COM_BINLOG_DUMP and then streams the feed.
type primary struct {
	feed       *Feed
	log        *slog.Logger
	user, pass string
	// targetID is the target's server_id: a replica silently skips events
	// carrying its own id, so such a transaction fails the replay instead.
	targetID uint32

	// The first session to reach the feed's end records its outcome once; a
	// later reconnect of the target (which serves only what is past its
	// connect state) cannot overwrite it. Read them after done is closed.
	once  sync.Once
	done  chan struct{}
	err   error
	count int
	last  *Txn
}

func (p *primary) serve(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.handle(ctx, c)
	}
}

func (p *primary) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	h := &session{p: p, ctx: ctx}
	srv := server.NewServer("5.5.5-10.11.0-MariaDB-drkit", gomysql.DEFAULT_COLLATION_ID, gomysql.AUTH_NATIVE_PASSWORD, nil, nil)
	auth := server.NewInMemoryAuthenticationHandler(gomysql.AUTH_NATIVE_PASSWORD)
	if err := auth.AddUser(p.user, p.pass); err != nil {
		p.log.Error("replay: auth setup", "err", err)
		return
	}
	conn, err := srv.NewCustomizedConn(c, auth, h)
	if err != nil {
		p.log.Warn("replay: a replication connection failed its handshake", "remote", c.RemoteAddr(), "err", firstLine(err))
		return
	}
	for !conn.Closed() {
		if err := conn.HandleCommand(); err != nil {
			if h.streamer != nil {
				h.streamer.AddErrorToStreamer(err)
			}
			return
		}
	}
}

func (p *primary) finish(count int, last *Txn, err error) {
	p.once.Do(func() {
		p.count, p.last, p.err = count, last, err
		close(p.done)
	})
}

// session is one replica connection.
type session struct {
	server.EmptyReplicationHandler
	p            *primary
	ctx          context.Context
	connectState Pos
	streamer     *replication.BinlogStreamer
}

// HandleQuery answers the replica's handshake queries with what a MariaDB
// primary would; unknown SETs are accepted, unknown SELECTs fail as a primary
// without that variable would.
func (s *session) HandleQuery(q string) (*gomysql.Result, error) {
	uq := strings.ToUpper(strings.TrimSpace(q))
	one := func(name string, v any) (*gomysql.Result, error) {
		rs, err := gomysql.BuildSimpleTextResultset([]string{name}, [][]any{{v}})
		if err != nil {
			return nil, err
		}
		return gomysql.NewResult(rs), nil
	}
	switch {
	case strings.HasPrefix(uq, "SET @SLAVE_CONNECT_STATE"):
		_, v, _ := strings.Cut(q, "=")
		pos, err := ParsePos(strings.Trim(strings.TrimSpace(v), "'"))
		if err != nil {
			return nil, gomysql.NewError(gomysql.ER_UNKNOWN_ERROR, err.Error())
		}
		s.connectState = pos
		return nil, nil
	case strings.HasPrefix(uq, "SET "):
		return nil, nil
	case uq == "SELECT UNIX_TIMESTAMP()":
		return one("UNIX_TIMESTAMP()", time.Now().Unix())
	case strings.Contains(uq, "SERVER_ID"):
		return one("@@GLOBAL.SERVER_ID", 4294967294) // never a real server's
	case uq == "SELECT @MASTER_BINLOG_CHECKSUM":
		return one("@master_binlog_checksum", "CRC32")
	case strings.Contains(uq, "GTID_DOMAIN_ID"):
		return one("@@GLOBAL.gtid_domain_id", 0)
	case strings.Contains(uq, "TIME_ZONE"):
		return one("@@GLOBAL.TIME_ZONE", "SYSTEM")
	}
	s.p.log.Debug("replay: replica sent an unexpected query", "query", q)
	return nil, gomysql.NewError(gomysql.ER_UNKNOWN_SYSTEM_VARIABLE, "drkit replay does not answer "+q)
}

// HandleRegisterSlave accepts the replica.
func (s *session) HandleRegisterSlave([]byte) error { return nil }

// HandleBinlogDump streams the feed after the replica's connect state.
func (s *session) HandleBinlogDump(gomysql.Position) (*replication.BinlogStreamer, error) {
	st := replication.NewBinlogStreamerWithChanSize(1024)
	s.streamer = st
	go s.stream(st)
	return st, nil
}

func (s *session) stream(st *replication.BinlogStreamer) {
	send := func(ev []byte) error {
		return st.AddEventToStreamer(&replication.BinlogEvent{RawData: ev})
	}
	var fde []byte
	file := 0
	count := 0
	var last *Txn
	feed := *s.p.feed
	if s.connectState != nil {
		feed.From = s.connectState
	}
	_, err := feed.Run(s.ctx, func(tx *Txn) error {
		if tx.GTID.Server == s.p.targetID {
			return fmt.Errorf("transaction %s was written by server_id %d, which is the target's own server_id: the target would skip it; give the target another server_id", tx.GTID, s.p.targetID)
		}
		if !sameBytes(tx.FDE, fde) {
			file++
			fde = tx.FDE
			if err := send(fakeRotate(fmt.Sprintf("drkit-replay.%06d", file), true)); err != nil {
				return err
			}
			if err := send(fde); err != nil {
				return err
			}
		}
		for _, ev := range tx.Events {
			if err := send(ev); err != nil {
				return err
			}
		}
		count++
		last = tx
		return nil
	})
	s.p.finish(count, last, err)
	if err != nil {
		st.AddErrorToStreamer(err)
		return
	}
	// Keep the connection alive while the target applies what it received.
	for {
		select {
		case <-s.ctx.Done():
			st.AddErrorToStreamer(s.ctx.Err())
			return
		case <-time.After(time.Second):
			if err := send(heartbeat(fmt.Sprintf("drkit-replay.%06d", file))); err != nil {
				return
			}
		}
	}
}

func sameBytes(a, b []byte) bool { return len(a) == len(b) && string(a) == string(b) }

// fakeRotate is the artificial Rotate event a primary sends first, naming the
// binlog file the replica is reading.
func fakeRotate(file string, crc bool) []byte {
	body := binary.LittleEndian.AppendUint64(nil, 4)
	body = append(body, file...)
	return event(evRotate, 0x20 /* LOG_EVENT_ARTIFICIAL_F */, body, crc)
}

// heartbeat is a Heartbeat event: "nothing new, I am alive".
func heartbeat(file string) []byte {
	return event(evHeartbeat, 0, []byte(file), true)
}

func event(typ byte, flags uint16, body []byte, crc bool) []byte {
	size := headerLen + len(body)
	if crc {
		size += 4
	}
	ev := make([]byte, headerLen, size)
	ev[4] = typ
	binary.LittleEndian.PutUint32(ev[5:], 4294967294)
	binary.LittleEndian.PutUint32(ev[9:], uint32(size))
	binary.LittleEndian.PutUint16(ev[17:], flags)
	ev = append(ev, body...)
	if crc {
		ev = binary.LittleEndian.AppendUint32(ev, crc32.ChecksumIEEE(ev))
	}
	return ev
}

// firstLine trims the stack traces go-mysql's errors carry.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
