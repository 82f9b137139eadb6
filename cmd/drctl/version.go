package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/buildinfo"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print drctl's version",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			info := buildinfo.Get()
			if g.json {
				return g.printJSON(info)
			}
			_, err := fmt.Fprintf(g.stdout, "drctl %s (revision %s, %s)\n", info.Version, info.Revision, info.GoVersion)
			return err
		},
	}
}
