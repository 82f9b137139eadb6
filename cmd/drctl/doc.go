// Command drctl is the operator's command line: status, backups, restore, verify,
// and the PostgreSQL archive/restore commands. It works with or without a running
// drd: during a disaster the daemon may be gone and the stores are all there is.
// It only parses flags and wires packages; the work lives in the packages.
package main
