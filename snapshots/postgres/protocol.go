package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	pgwal "github.com/drkit/drkit/binlog/postgres"
)

// baseBackupStream reads a PostgreSQL 15+ BASE_BACKUP response: the start
// position, the tablespaces, one COPY stream of archives ('n' new archive, 'd'
// data, 'p' progress, 'm' manifest follows), then the stop position.
type baseBackupStream struct {
	conn     *pgconn.PgConn
	Start    pgwal.LSN
	Timeline uint32
	Stop     pgwal.LSN

	// Progress is the archive bytes the server has sent before compression,
	// as of its last progress message (about one a second, and one at the end
	// of each archive).
	Progress int64

	want     string // the archive's name: "base.tar", or "base.tar.zst" compressed
	archive  string // name of the archive being sent
	manifest bool   // the data now being sent is the backup manifest
	done     bool
}

// startBaseBackup sends BASE_BACKUP and reads up to the start of its archives.
// With level > 0 the server compresses the archive with zstd at that level
// (PostgreSQL 15's server-side compression); the manifest stays plain.
func startBaseBackup(ctx context.Context, conn *pgconn.PgConn, label string, level int) (*baseBackupStream, error) {
	opts := fmt.Sprintf("LABEL '%s', PROGRESS, CHECKPOINT 'fast', WAL true, WAIT false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C'", strings.ReplaceAll(label, "'", "''"))
	if level > 0 {
		opts += fmt.Sprintf(", COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=%d'", level)
	}
	conn.Frontend().SendQuery(&pgproto3.Query{String: "BASE_BACKUP (" + opts + ")"})
	if err := conn.Frontend().Flush(); err != nil {
		return nil, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	b := &baseBackupStream{conn: conn, want: "base.tar"}
	if level > 0 {
		b.want = "base.tar.zst"
	}
	rows, err := b.resultSet(ctx)
	if err != nil {
		var se *serverError
		if errors.As(err, &se) {
			// The command failed before it began: the connection stays
			// usable (a caller may ask again without compression).
			if rerr := b.awaitReady(ctx); rerr != nil {
				return nil, fmt.Errorf("BASE_BACKUP start: %w (then: %v)", err, rerr)
			}
		}
		return nil, fmt.Errorf("BASE_BACKUP start: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return nil, errors.New("BASE_BACKUP start: unexpected reply")
	}
	if b.Start, err = pgwal.ParseLSN(string(rows[0][0])); err != nil {
		return nil, err
	}
	tli, _ := strconv.ParseUint(string(rows[0][1]), 10, 32)
	b.Timeline = uint32(tli)
	tablespaces, err := b.resultSet(ctx)
	if err != nil {
		return nil, fmt.Errorf("BASE_BACKUP tablespaces: %w", err)
	}
	for _, ts := range tablespaces {
		if len(ts) > 0 && ts[0] != nil {
			return nil, fmt.Errorf("the cluster has a tablespace outside the data folder (%s): drkit does not back those up yet", ts[1])
		}
	}
	for { // up to the COPY
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyOutResponse:
			return b, nil
		case *pgproto3.NoticeResponse:
		case *pgproto3.ErrorResponse:
			return nil, pgErr(m)
		default:
			return nil, fmt.Errorf("BASE_BACKUP: unexpected %T before the archive", m)
		}
	}
}

// resultSet reads one result set's rows up to its CommandComplete.
func (b *baseBackupStream) resultSet(ctx context.Context) ([][][]byte, error) {
	var rows [][][]byte
	for {
		msg, err := b.conn.ReceiveMessage(ctx)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription, *pgproto3.NoticeResponse:
		case *pgproto3.DataRow:
			row := make([][]byte, len(m.Values))
			for i, v := range m.Values {
				if v != nil {
					row[i] = bytes.Clone(v)
				}
			}
			rows = append(rows, row)
		case *pgproto3.CommandComplete:
			return rows, nil
		case *pgproto3.ErrorResponse:
			return nil, pgErr(m)
		default:
			return nil, fmt.Errorf("unexpected %T", m)
		}
	}
}

// next reads the COPY stream until data arrives and returns it with what it
// belongs to; io.EOF once the COPY is done.
func (b *baseBackupStream) next(ctx context.Context) (data []byte, archive string, manifest bool, err error) {
	for {
		if b.done {
			return nil, "", false, io.EOF
		}
		msg, err := b.conn.ReceiveMessage(ctx)
		if err != nil {
			return nil, "", false, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case 'n':
				name, _, _ := bytes.Cut(m.Data[1:], []byte{0})
				b.archive, b.manifest = string(name), false
				if b.archive != b.want {
					return nil, "", false, fmt.Errorf("BASE_BACKUP sent archive %q; only %s is supported", b.archive, b.want)
				}
			case 'm':
				b.manifest = true
			case 'p':
				if len(m.Data) >= 9 {
					b.Progress = int64(binary.BigEndian.Uint64(m.Data[1:9]))
				}
			case 'd':
				return m.Data[1:], b.archive, b.manifest, nil
			default:
				return nil, "", false, fmt.Errorf("BASE_BACKUP: unknown message type %q (PostgreSQL 15 or newer is needed)", m.Data[0])
			}
		case *pgproto3.CopyDone:
			b.done = true
		case *pgproto3.NoticeResponse:
		case *pgproto3.ErrorResponse:
			return nil, "", false, pgErr(m)
		default:
			return nil, "", false, fmt.Errorf("BASE_BACKUP: unexpected %T in the archive stream", m)
		}
	}
}

// finish reads the stop position and the end of the command.
func (b *baseBackupStream) finish(ctx context.Context) error {
	rows, err := b.resultSet(ctx)
	if err != nil {
		return fmt.Errorf("BASE_BACKUP end: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) < 1 {
		return errors.New("BASE_BACKUP end: unexpected reply")
	}
	if b.Stop, err = pgwal.ParseLSN(string(rows[0][0])); err != nil {
		return err
	}
	return b.awaitReady(ctx)
}

// awaitReady reads up to the server's ReadyForQuery.
func (b *baseBackupStream) awaitReady(ctx context.Context) error {
	for {
		msg, err := b.conn.ReceiveMessage(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.ReadyForQuery:
			return nil
		case *pgproto3.ErrorResponse:
			return pgErr(m)
		}
	}
}

// serverError is an ErrorResponse from the server.
type serverError struct {
	Message, Code string
}

func (e *serverError) Error() string {
	return fmt.Sprintf("server: %s (SQLSTATE %s)", e.Message, e.Code)
}

func pgErr(m *pgproto3.ErrorResponse) error {
	return &serverError{Message: m.Message, Code: m.Code}
}
