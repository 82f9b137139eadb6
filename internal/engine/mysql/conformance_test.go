package mysql

import (
	"database/sql"
	"strconv"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/drkit/drkit/internal/engine/enginetest"
	"github.com/drkit/drkit/internal/testenv"
)

// The engine conformance suite on a real MariaDB: restores load into fresh
// empty servers and replay the binlog through their own applier.
func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		Engine: Name,
		Start: func(t *testing.T) (string, string) {
			m := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
			testenv.Start(t, m)
			return m.DSN(""), "    server_id: " + strconv.Itoa(int(80000+m.ServerID)) + "\n"
		},
		Write: func(t *testing.T, dsn string, v int) {
			db, err := sql.Open("mysql", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, q := range []string{"CREATE DATABASE IF NOT EXISTS shop", "CREATE TABLE IF NOT EXISTS shop.stamps (v INT PRIMARY KEY)",
				"INSERT INTO shop.stamps VALUES (" + strconv.Itoa(v) + ")"} {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		},
		Target: func(t *testing.T) (map[string]string, func(t *testing.T) []int) {
			m := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
			testenv.Start(t, m)
			return map[string]string{"target-dsn": m.DSN("")}, func(t *testing.T) []int {
				db := m.Open(t, "")
				rows, err := db.Query("SELECT v FROM shop.stamps ORDER BY v")
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var got []int
				for rows.Next() {
					var v int
					if err := rows.Scan(&v); err != nil {
						t.Fatal(err)
					}
					got = append(got, v)
				}
				return got
			}
		},
	})
}
