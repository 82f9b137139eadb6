package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/snapshots"
)

// Names of the folder RestoreDir writes: Redis 7's multi-part AOF, an RDB
// base and one incremental file, which redis-server loads natively.
const (
	aofDir      = "appendonlydir"
	aofName     = "appendonly.aof"
	aofBase     = aofName + ".1.base.rdb"
	aofIncr     = aofName + ".1.incr.aof"
	aofManifest = aofName + ".manifest"
)

// DirResult says what RestoreDir wrote.
type DirResult struct {
	RestoreResult
	Dir string `json:"dir"`
	// Command starts redis-server on the folder.
	Command string `json:"command"`
}

// RestoreDir writes the restore into an empty or missing folder dir, for a
// redis-server to load: the base's RDB as the AOF's base file, and the
// stored commands up to the target as its incremental file, each preceded
// by a #TS: annotation (the time drd received it). Nothing runs Redis here.
func RestoreDir(ctx context.Context, o RestoreOptions, dir string) (DirResult, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	cat, chain, res, err := plan(ctx, o)
	out := DirResult{RestoreResult: res, Dir: dir}
	if err != nil {
		return out, err
	}
	if err := emptyFolder(dir); err != nil {
		return out, err
	}
	aof := filepath.Join(dir, aofDir)
	if err := os.MkdirAll(aof, 0o700); err != nil {
		return out, err
	}
	if err := writeBase(ctx, o, res.Backup, filepath.Join(aof, aofBase)); err != nil {
		return out, err
	}
	f, err := os.OpenFile(filepath.Join(aof, aofIncr), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return out, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	lastTS := int64(-1)
	// Only written here; redis-server replays the file when it starts.
	snapshots.Enter(o.Phase, "fetch log")
	out.Offset, err = cat.Replay(ctx, chain, res.Backup.Offset, o.Stop, func(c rdwal.Command) error {
		if ts := c.MS / 1000; ts != lastTS {
			// Redis's own AOF annotation: redis-check-aof --truncate-to-timestamp
			// cuts at it.
			fmt.Fprintf(w, "#TS:%d\r\n", ts)
			lastTS = ts
		}
		out.Commands++
		_, err := w.Write(c.RESP)
		return err
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return out, fmt.Errorf("write %s: %w", filepath.Join(aof, aofIncr), err)
	}
	manifest := "file " + aofBase + " seq 1 type b\nfile " + aofIncr + " seq 1 type i\n"
	if err := os.WriteFile(filepath.Join(aof, aofManifest), []byte(manifest), 0o600); err != nil {
		return out, err
	}
	out.Command = "redis-server --dir " + strconv.Quote(dir) + " --appendonly yes --appenddirname " + aofDir + " --appendfilename " + aofName
	return out, nil
}

// writeBase copies the base's RDB (checksum checked) to path.
func writeBase(ctx context.Context, o RestoreOptions, b rdwal.Base, path string) error {
	rc, err := o.Region.Pipeline.Open(ctx, b.RDB)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("base backup %s: %w", b.ID, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// emptyFolder refuses a folder that holds anything: a restore never mixes
// with files already there.
func emptyFolder(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("--target-dir %s is not empty (%s, …): a restore writes into an empty or new folder only; nothing was changed", dir, entries[0].Name())
	}
	return nil
}
