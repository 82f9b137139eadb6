package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Exit codes are a documented contract: scripts and runbooks branch on them.
const (
	exitOK       = 0
	exitFailure  = 1 // the operation failed
	exitUsage    = 2 // bad flags, arguments or config
	exitNotFound = 3 // the cluster, region, backup or object does not exist
)

const exitCodesHelp = `Exit codes:
  0  success
  1  the operation failed
  2  bad usage: flags, arguments or the config file
  3  not found: the cluster, region, backup or object does not exist`

// exitError carries the exit code an error should produce.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// usageArgs wraps a cobra positional-argument check so that its failure exits 2.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageErr(err)
		}
		return nil
	}
}
