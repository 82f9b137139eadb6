package config

import (
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted is what replaces a secret in output and logs.
const Redacted = "REDACTED"

// Redacted returns a copy of c with every secret replaced, safe to print or log.
func (c *Config) Redacted() *Config {
	out := *c
	out.Regions = make([]Region, len(c.Regions))
	for i, r := range c.Regions {
		r.Store = RedactURL(r.Store)
		out.Regions[i] = r
	}
	if c.Outscale.OOS != nil {
		out.Outscale.OOS = map[string]string{}
		for reg, u := range c.Outscale.OOS {
			out.Outscale.OOS[reg] = RedactURL(u)
		}
	}
	out.Clusters = make([]Cluster, len(c.Clusters))
	for i, cl := range c.Clusters {
		cl.DSN = RedactDSN(cl.DSN)
		cl.ShipTo = append([]string(nil), cl.ShipTo...)
		cl.Monitor.Heartbeat.DSN = RedactDSN(cl.Monitor.Heartbeat.DSN)
		cl.Drill.Target = RedactDSN(cl.Drill.Target)
		cl.Replicas = append([]Replica(nil), cl.Replicas...)
		for j := range cl.Replicas {
			cl.Replicas[j].DSN = RedactDSN(cl.Replicas[j].DSN)
		}
		out.Clusters[i] = cl
	}
	return &out
}

// YAML renders c (call Redacted first when printing it).
func (c *Config) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return b.Bytes(), nil
}

// secretParam reports whether a query or key=value parameter carries a secret.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"password", "passwd", "secret", "token", "credential"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return n == "pass" || n == "pwd"
}

// RedactURL hides the password of a URL's user info and secret query parameters.
// A string that is not a URL with a scheme is returned by RedactDSN's rules.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || !strings.Contains(raw, "://") {
		return raw
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Redacted)
		}
	}
	// Edit the raw query in place so that the rest of it prints as the user wrote it.
	params := strings.Split(u.RawQuery, "&")
	for i, kv := range params {
		if k, _, ok := strings.Cut(kv, "="); ok && secretParam(k) {
			params[i] = k + "=" + Redacted
		}
	}
	u.RawQuery = strings.Join(params, "&")
	return u.String()
}

var (
	// mysqlDSN matches go-sql-driver's "user:password@tcp(host)/db" form.
	// The password may itself hold '@', so match up to the last '@' before the address.
	mysqlDSN = regexp.MustCompile(`^([^:@/]*):(.*)@((?:tcp|unix)\(|/)`)
	// kvSecret matches password=... in libpq's key=value form, quoted or not.
	kvSecret = regexp.MustCompile(`(?i)\b(password|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)
)

// RedactDSN hides the password in a database connection string of any form drkit
// accepts: URL (postgres://, redis://, mongodb://), MySQL DSN, or libpq key=value.
func RedactDSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		return RedactURL(dsn)
	}
	if kvSecret.MatchString(dsn) {
		return kvSecret.ReplaceAllString(dsn, "${1}="+Redacted)
	}
	if mysqlDSN.MatchString(dsn) {
		return mysqlDSN.ReplaceAllString(dsn, "${1}:"+Redacted+"@${3}")
	}
	return dsn
}

// Password returns the password in a DSN of any form RedactDSN knows; a
// registered replica's DSN is stored redacted and gets its cluster's back.
func Password(dsn string) (string, bool) {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil || u.User == nil {
			return "", false
		}
		return u.User.Password()
	}
	for _, m := range kvSecret.FindAllStringSubmatch(dsn, -1) {
		if strings.EqualFold(m[1], "password") {
			return m[2], true
		}
	}
	if m := mysqlDSN.FindStringSubmatch(dsn); m != nil {
		return m[2], true
	}
	return "", false
}
