package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMetricReadsOneSeries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# HELP drkit_x x\n# TYPE drkit_x gauge\ndrkit_x{cluster=\"ab\"} 7\ndrkit_x{cluster=\"a\"} 2.5\n")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if v, ok := Metric(addr, `drkit_x{cluster="a"}`); !ok || v != 2.5 {
		t.Fatalf(`drkit_x{cluster="a"} = %v, %v; want 2.5 (not the "ab" series)`, v, ok)
	}
	if _, ok := Metric(addr, `drkit_x{cluster="b"}`); ok {
		t.Fatal("an absent series was read")
	}
	srv.Close()
	if _, ok := Metric(addr, `drkit_x{cluster="a"}`); ok {
		t.Fatal("a series was read from a closed server")
	}
}
