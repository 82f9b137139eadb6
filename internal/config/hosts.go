package config

import (
	"net/url"
	"path"
	"regexp"
	"strings"
)

// A store is untrusted: anyone who can write one region's bucket can write a
// replication record (a registered replica, a promotion) naming any host. drd
// fills in the cluster's password and dials the hosts those records name, so
// a record is followed only when its host is one the config trusts, and only
// with TLS at least as strict as the cluster's own dsn.

var kvHost = regexp.MustCompile(`(?i)(?:^|\s)host\s*=\s*'?([^'\s]+)`)

// DSNHost returns the host a DSN of any engine's form connects to ("" when
// it names none).
func DSNHost(dsn string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return ""
		}
		return u.Hostname()
	}
	if m := kvHost.FindStringSubmatch(dsn); m != nil {
		return m[1]
	}
	if host, _, ok := parseDSNs(dsn); ok {
		return host
	}
	return ""
}

// TrustsHost reports whether drd may connect to the host dsn names with the
// cluster's credentials: the host of the cluster's dsn or of a configured
// replica, or one matching clusters[].hosts (a name, an address, or a
// pattern such as *.db.internal); and only with TLS at least as strict as the
// cluster's dsn asks for.
func (cl Cluster) TrustsHost(dsn string) bool {
	host := DSNHost(dsn)
	if host == "" || tlsRank(dsn) < tlsRank(cl.DSN) {
		return false
	}
	trusted := []string{DSNHost(cl.DSN)}
	for _, r := range cl.Replicas {
		trusted = append(trusted, DSNHost(r.DSN))
	}
	trusted = append(trusted, cl.Hosts...)
	for _, t := range trusted {
		if t == "" {
			continue
		}
		if ok, _ := path.Match(strings.ToLower(t), strings.ToLower(host)); ok {
			return true
		}
	}
	return false
}

// tlsRank orders how strictly a DSN checks its server: 0 no TLS or unchecked,
// 1 encrypted without checking the certificate, 2 the certificate and name checked.
func tlsRank(dsn string) int {
	lower := strings.ToLower(dsn)
	switch {
	case strings.HasPrefix(lower, "rediss://"):
		if strings.Contains(lower, "insecureskipverify=true") {
			return 1
		}
		return 2
	case strings.Contains(lower, "sslmode=verify-full"), strings.Contains(lower, "sslmode=verify-ca"):
		return 2
	case strings.Contains(lower, "sslmode=require"):
		return 1
	}
	if _, tls, ok := parseDSNs(dsn); ok && tls > 0 && !strings.Contains(dsn, "://") {
		return tls
	}
	if strings.Contains(lower, "tls=true") || strings.Contains(lower, "ssl=true") {
		return 2
	}
	return 0
}
