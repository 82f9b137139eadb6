// Package demo holds `make demo` (demo.sh); this test runs it so that the
// README's first command keeps working.
package demo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
)

func TestDemo(t *testing.T) {
	drctl := testenv.Binary(t, "drctl")
	testenv.Binary(t, "drd")
	cmd := exec.Command("./demo.sh")
	cmd.Env = append(os.Environ(), "DRKIT_BIN="+filepath.Dir(drctl))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "identical: every committed transaction came back") {
		t.Fatalf("demo.sh did not end with identical counts:\n%s", out)
	}
}
