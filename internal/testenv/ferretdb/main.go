// Command ferretdb-test serves the MongoDB wire protocol for drkit's tests
// and benchmarks: FerretDB's embeddable package with its SQLite backend,
// since no mongod can be installed on the machines the tests run on.
//
// Usage (a contract scripts rely on):
//
//	ferretdb-test ADDR DIR
//
// serves on ADDR (host:port) with its SQLite files in DIR until SIGTERM or
// SIGINT. It is its own module so that FerretDB's dependencies stay out of
// drkit's; `make deps` builds it into ./bin.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ferretdb-test ADDR DIR")
		os.Exit(2)
	}
	addr, dir := os.Args[1], os.Args[2]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: %v\n", err)
		os.Exit(1)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintf(os.Stderr, "ferretdb-test: serving %s on %s\n", dir, addr)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: %v\n", err)
		os.Exit(1)
	}
}
