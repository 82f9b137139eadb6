package main

import (
	"fmt"
	"strings"
	"time"
)

// targetTimeHelp is the --target-time flag's help: the formats it accepts.
const targetTimeHelp = `recover up to this time: RFC 3339 (2026-11-21T09:14:00Z), or as PostgreSQL
and MariaDB print it ('2026-11-21 09:14:00.460406+00', '2026-11-21 09:14:00');
a time without a zone is UTC`

// targetTimeLayouts are the forms --target-time accepts. Go parses a
// fractional second after the seconds even where a layout has none.
var targetTimeLayouts = []string{
	time.RFC3339,                // 2026-11-21T09:14:00.123Z, +01:00
	"2006-01-02 15:04:05Z07:00", // psql with a minutes offset: +05:30
	"2006-01-02 15:04:05Z07",    // psql: 2026-11-21 09:14:00.460406+00
	"2006-01-02T15:04:05Z07",
	"2006-01-02 15:04:05Z0700",
	"2006-01-02T15:04:05Z0700",
}

// noZoneLayouts are read as UTC: MariaDB's NOW() prints no zone.
var noZoneLayouts = []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05"}

// parseTargetTime reads --target-time.
func parseTargetTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	v = strings.TrimSuffix(strings.TrimSuffix(v, " UTC"), " GMT")
	for _, l := range targetTimeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	for _, l := range noZoneLayouts {
		if t, err := time.ParseInLocation(l, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr(fmt.Errorf("--target-time %q is not a time drctl reads: give RFC 3339 (2026-11-21T09:14:00Z) or what PostgreSQL or MariaDB print ('2026-11-21 09:14:00.460406+00'; without a zone, UTC)", s))
}
