package config

import (
	"slices"
	"sort"
	"sync"
)

// EngineRules are what an engine tells the config about its clusters. Every
// engine adapter registers its rules (internal/engine.Register does it), so
// this package validates and fills in a cluster without naming an engine: a
// new engine touches no file here.
type EngineRules struct {
	// CheckDSN returns what is wrong with a dsn (the cluster's or a
	// replica's) for this engine, or nil. Nil accepts any dsn.
	CheckDSN func(dsn string) error
	// ParseDSN reads a dsn written in a form only this engine uses (not a
	// URL, not key=value): the host it connects to and how strictly it checks
	// TLS (0 none, 1 encrypted, 2 verified). ok is false when dsn is not in
	// that form. Nil when the engine has no such form.
	ParseDSN func(dsn string) (host string, tls int, ok bool)
	// Defaults fills in what the engine needs and the file left out
	// (heartbeat table, replication slot, server id).
	Defaults func(cl *Cluster)
	// Acknowledges says the engine's shipper acknowledges log positions to
	// the server, so required_regions means something for it.
	Acknowledges bool
	// Sync says the engine's server can wait for drd before a commit
	// returns (clusters[].sync: synchronous or semi-synchronous replication).
	Sync bool
	// SyncCheck says the engine compares a replica's data with the
	// primary's (sync_check).
	SyncCheck bool
	// Drill says the engine can restore into a sandbox (drill).
	Drill bool
	// DrillTarget says the engine can drill into a server the config names
	// (drill.target) instead of one the drill starts.
	DrillTarget bool
}

var (
	rulesMu sync.RWMutex
	rules   = map[string]EngineRules{}
)

// RegisterEngine records the rules of the engine called name. It panics if
// the name is taken, as database/sql.Register does.
func RegisterEngine(name string, r EngineRules) {
	rulesMu.Lock()
	defer rulesMu.Unlock()
	if _, dup := rules[name]; dup {
		panic("config: RegisterEngine called twice for " + name)
	}
	rules[name] = r
}

// Engines returns the registered engines a cluster may name, sorted.
func Engines() []string {
	rulesMu.RLock()
	defer rulesMu.RUnlock()
	out := make([]string, 0, len(rules))
	for n := range rules {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Rules returns the rules of the engine called name (zero when unknown).
func Rules(name string) EngineRules {
	rulesMu.RLock()
	defer rulesMu.RUnlock()
	return rules[name]
}

// enginesWhere returns the registered engines whose rules pass keep, sorted.
func enginesWhere(keep func(EngineRules) bool) []string {
	return slices.DeleteFunc(Engines(), func(n string) bool { return !keep(Rules(n)) })
}

// parseDSNs asks each engine with a DSN form of its own to read dsn.
func parseDSNs(dsn string) (host string, tls int, ok bool) {
	for _, n := range Engines() {
		if p := Rules(n).ParseDSN; p != nil {
			if host, tls, ok = p(dsn); ok {
				return host, tls, true
			}
		}
	}
	return "", 0, false
}
