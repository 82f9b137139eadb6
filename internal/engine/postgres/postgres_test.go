package postgres

import (
	"os/exec"
	"strings"
	"testing"
)

// restore_command runs under sh -c after PostgreSQL replaced %f and %p: a
// config path holding $, backticks, quotes or % reaches drctl as it is.
func TestRestoreCommandQuoting(t *testing.T) {
	for _, s := range []string{"/srv/drkit.yaml", "/srv/$HOME/`id`/it's/100%f/\"x\"/a b"} {
		quoted := ShellArg(s)
		// PostgreSQL's substitution: %% is a literal %.
		cmdline := strings.ReplaceAll(quoted, "%%", "%")
		out, err := exec.Command("sh", "-c", "printf %s "+cmdline).Output()
		if err != nil || string(out) != s {
			t.Errorf("ShellArg(%q) = %s: the shell printed %q (%v)", s, quoted, out, err)
		}
	}
}
