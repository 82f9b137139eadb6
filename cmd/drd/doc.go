// Command drd is drkit's daemon: it runs beside a database, ships its transaction
// log to every region, takes base backups, watches replicas and serves metrics.
// It only wires packages together; see DESIGN.md for where the work lives.
package main
