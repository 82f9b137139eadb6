package logging

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "": slog.LevelInfo, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), Levels) {
		t.Errorf("ParseLevel(loud) error = %v, want the allowed levels", err)
	}
}

// A writer that is not a terminal (a pipe, a file, journald) gets JSON lines.
func TestNewWritesJSONWhenNotATerminal(t *testing.T) {
	var b strings.Builder
	log, err := New(&b, "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "region", "eu-west-1")
	var rec map[string]any
	if err := json.Unmarshal([]byte(b.String()), &rec); err != nil {
		t.Fatalf("not one JSON line: %q (%v)", b.String(), err)
	}
	if rec["msg"] != "shown" || rec["region"] != "eu-west-1" {
		t.Errorf("record = %v", rec)
	}
}

// Durations are logged as text, not as integers of nanoseconds.
func TestDurationsReadable(t *testing.T) {
	var b strings.Builder
	log, err := New(&b, "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("upload failed; retrying", "retry_in", 1500*time.Millisecond, slog.Group("g", "wait", 2*time.Second))
	if out := b.String(); !strings.Contains(out, `"retry_in":"1.5s"`) || !strings.Contains(out, `"wait":"2s"`) {
		t.Fatalf("durations not readable: %s", out)
	}
}
