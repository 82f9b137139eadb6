package main

import (
	"testing"
	"time"
)

func TestParseTargetTime(t *testing.T) {
	want := time.Date(2026, 12, 4, 12, 32, 2, 460406000, time.UTC)
	for _, s := range []string{
		"2026-12-04T12:32:02.460406Z",
		"2026-12-04 12:32:02.460406+00", // psql: select now()
		"2026-12-04 13:32:02.460406+01",
		"2026-12-04 18:02:02.460406+05:30",
		"2026-12-04T13:32:02.460406+0100",
		"2026-12-04 12:32:02.460406", // MariaDB: no zone is UTC
		"2026-12-04T12:32:02.460406",
		" 2026-12-04 12:32:02.460406 UTC",
	} {
		got, err := parseTargetTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTargetTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := parseTargetTime("2026-12-04 12:32:02"); err != nil || !got.Equal(want.Truncate(time.Second)) {
		t.Errorf("whole seconds: %v, %v", got, err)
	}
	for _, s := range []string{"", "yesterday", "2026-13-04 12:32:02", "12:32:02", "2026-12-04 12:32:02 +00 junk"} {
		if _, err := parseTargetTime(s); err == nil || exitCode(err) != exitUsage {
			t.Errorf("parseTargetTime(%q) accepted or not a usage error: %v", s, err)
		}
	}
}
