package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/drkit/drkit/internal/engine"
)

// Passwords given on the command line are visible to every user in process
// listings, so DSN flags take them from a file (--…-password-file) or from the
// environment variable the engine's own tools read, and fill them in here.

// passwordHelp is appended to the help of a DSN flag.
const passwordHelp = "; leave the password out and give it with %s or $%s, not on the command line (visible in process listings)"

// withPassword returns dsn with the password of file, else of the engine's
// environment variable, filled in when dsn carries none.
func withPassword(engineName, dsn, file string) (string, error) {
	p, err := engine.Capable[engine.Passwords](engineName, "take a password from a file")
	if err != nil {
		return "", usageErr(err)
	}
	pw, ok := "", false
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageErr(fmt.Errorf("password file: %w", err))
		}
		pw, ok = strings.TrimRight(string(b), "\r\n"), true
	} else {
		pw, ok = os.LookupEnv(p.PasswordEnv())
	}
	if !ok || dsn == "" {
		return dsn, nil
	}
	out, err := p.WithPassword(dsn, pw)
	if err != nil {
		return "", engineErr(err)
	}
	return out, nil
}
