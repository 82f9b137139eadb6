package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	driver "github.com/go-sql-driver/mysql"
)

// Passwords given in --dsn / --target-dsn are visible to every user of the
// machine in the process list. They can come instead from a file
// (--password-file, --target-password-file) or from the environment variable
// each engine's own tools read: PGPASSWORD (read by the PostgreSQL driver
// itself), MYSQL_PWD, REDISCLI_AUTH.

// passwordHelp is the note the flags' help carries.
const passwordHelp = "; leave the password out and give it with %s or $%s, not on the command line (visible in process listings)"

// passwordEnv is the environment variable an engine's own tools read.
func passwordEnv(engine string) string {
	switch engine {
	case "mysql":
		return "MYSQL_PWD"
	case "redis":
		return "REDISCLI_AUTH"
	}
	return "PGPASSWORD"
}

// withPassword puts a password into dsn when it has none: from file if one is
// given, else from the engine's environment variable (PostgreSQL's driver
// reads PGPASSWORD itself). A DSN that has a password is returned as it is.
func withPassword(engine, dsn, file string) (string, error) {
	pw, ok := "", false
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageErr(fmt.Errorf("password file: %w", err))
		}
		pw, ok = strings.TrimRight(string(b), "\r\n"), true
	} else if engine != "postgres" {
		pw, ok = os.LookupEnv(passwordEnv(engine))
	}
	if !ok || dsn == "" {
		return dsn, nil
	}
	switch engine {
	case "mysql":
		cfg, err := driver.ParseDSN(dsn)
		if err != nil {
			return "", usageErr(fmt.Errorf("the DSN is not a MySQL DSN (user@tcp(host:3306)/): %w", err))
		}
		if cfg.Passwd == "" {
			cfg.Passwd = pw
		}
		return cfg.FormatDSN(), nil
	default: // postgres:// and redis:// URLs; PostgreSQL's key=value form too
		if !strings.Contains(dsn, "://") {
			if strings.Contains(dsn, "password=") {
				return dsn, nil
			}
			return dsn + " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'", nil
		}
		u, err := url.Parse(dsn)
		if err != nil {
			return "", usageErr(fmt.Errorf("the DSN is not a URL: %w", err))
		}
		if _, has := u.User.Password(); has {
			return dsn, nil
		}
		user := ""
		if u.User != nil {
			user = u.User.Username()
		}
		u.User = url.UserPassword(user, pw)
		return u.String(), nil
	}
}
