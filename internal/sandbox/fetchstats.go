package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FetchStatsEnv names the file a sandboxed server's own log fetcher (drctl
// wal-fetch, run by PostgreSQL as restore_command) appends what each fetch
// read and took to: the drill cannot count those reads itself, they happen
// in other processes. Set only in the environment of a drill's server.
const FetchStatsEnv = "DRKIT_DRILL_FETCH_STATS"

// AppendFetchStats adds one fetch (bytes read, time taken) to the file at
// path: one line "bytes nanoseconds", written with one append, so that
// concurrent fetchers never interleave within a line.
func AppendFetchStats(path string, bytes int64, took time.Duration) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("drill fetch stats: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d %d\n", bytes, took.Nanoseconds())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("drill fetch stats %s: %w", path, err)
	}
	return nil
}

// ReadFetchStats sums the fetches recorded in path; no file is no fetch.
func ReadFetchStats(path string) (bytes int64, took time.Duration, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("drill fetch stats: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		b, ns, ok := strings.Cut(sc.Text(), " ")
		bi, err1 := strconv.ParseInt(b, 10, 64)
		ni, err2 := strconv.ParseInt(ns, 10, 64)
		if !ok || err1 != nil || err2 != nil || bi < 0 || ni < 0 {
			return 0, 0, fmt.Errorf("drill fetch stats %s line %d: %q is not \"bytes nanoseconds\"", path, n, sc.Text())
		}
		bytes += bi
		took += time.Duration(ni)
	}
	return bytes, took, sc.Err()
}
