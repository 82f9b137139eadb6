package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress returns a reader that draws a progress bar on stderr while r is read,
// when stderr is a terminal and --json is off; otherwise r itself.
func (g *globals) progress(r io.Reader, size int64, what string) (io.Reader, func()) {
	f, ok := g.stderr.(*os.File)
	if g.json || !ok || !term.IsTerminal(int(f.Fd())) {
		return r, func() {}
	}
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100_000_000), // 100 ms
		progressbar.OptionClearOnFinish(),
	)
	pr := progressbar.NewReader(r, bar)
	return &pr, func() { _ = bar.Finish() }
}

// countBar returns a progress callback (done, total; total -1 when unknown)
// drawing a bar on a terminal, and a func to finish it; both are no-ops
// elsewhere. bytes says whether the counts are bytes (else rows, transactions).
func (g *globals) countBar(what string, bytes bool) (func(done, total int64), func()) {
	f, ok := g.stderr.(*os.File)
	if g.json || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	return func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription(what),
					progressbar.OptionShowBytes(bytes), progressbar.OptionShowCount(), progressbar.OptionThrottle(100_000_000), progressbar.OptionClearOnFinish())
			}
			_ = bar.Set64(done)
		}, func() {
			if bar != nil {
				_ = bar.Finish()
			}
		}
}

// stageLine returns a callback that shows long work in stages (an OUTSCALE
// transfer: export, copy, import) as one line per item on a terminal,
// redrawn at most every 200 ms and ended at each stage change; nil
// elsewhere.
func (g *globals) stageLine() func(item, stage string, done, total int64) {
	f, ok := g.stderr.(*os.File)
	if g.json || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	var (
		mu        sync.Mutex
		last      string
		lastDrawn time.Time
	)
	return func(item, stage string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		key := item + " " + stage
		if key == last && time.Since(lastDrawn) < 200*time.Millisecond && done < total {
			return
		}
		if key != last && last != "" {
			fmt.Fprintln(f)
		}
		last, lastDrawn = key, time.Now()
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		fmt.Fprintf(f, "\r%s: %s %5.1f%%", item, stage, pct)
	}
}
