package testenv

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metric reads one series from drd's /metrics at addr (host:port), named as
// the exposition prints it: `drkit_sync_stalled{cluster="orders"}`. ok is
// false while drd is unreachable or does not export the series.
func Metric(addr, series string) (v float64, ok bool) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		rest, found := strings.CutPrefix(line, series+" ")
		if !found {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}
