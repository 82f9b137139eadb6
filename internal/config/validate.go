package config

import (
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/robfig/cron/v3"

	"github.com/drkit/drkit/storage"
)

// namePattern keeps region and cluster names safe as object-key segments and as
// Prometheus label values.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

const nameRule = "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters"

// validate checks the decoded config and reports every problem with its line.
func (c *Config) validate() error {
	var p problems
	c.validateDrd(&p)
	c.validateStorage(&p)
	c.validateRegions(&p)
	c.validateClusters(&p)
	c.validateCopies(&p)
	c.validateEC2(&p)
	return p.err(c.Path)
}

// line returns the line of path, or of its nearest recorded parent.
func (c *Config) line(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (c *Config) validateDrd(p *problems) {
	_, port, err := net.SplitHostPort(c.Drd.Listen)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		p.add(c.line("drd.listen"), "drd.listen %q is not host:port (for example 127.0.0.1:9580 or :9580)", c.Drd.Listen)
	}
	if c.Drd.LeaseTTL < Duration(2*time.Second) || c.Drd.LeaseTTL > Duration(10*time.Minute) {
		p.add(c.line("drd.lease_ttl"), "drd.lease_ttl %s is outside 2s..10m", c.Drd.LeaseTTL)
	}
	if t := c.Drd.API.TLS; t != nil && (t.CertFile == "" || t.KeyFile == "") {
		p.add(c.line("drd.api.tls"), "drd.api.tls needs both cert_file and key_file")
	}
	if c.Drd.API.ProtectAll && c.Drd.API.TokensFile == "" {
		p.add(c.line("drd.api.protect_all"), "drd.api.protect_all needs drd.api.tokens_file")
	}
}

func (c *Config) validateStorage(p *problems) {
	st := c.Storage
	if st.Compression != "zstd" && st.Compression != "none" {
		p.add(c.line("storage.compression"), "storage.compression %q is not known; allowed: zstd, none", st.Compression)
	}
	if st.CompressionLevel < 1 || st.CompressionLevel > 22 {
		p.add(c.line("storage.compression_level"), "storage.compression_level %d is outside 1..22 (1 fastest and the default, 22 smallest)", st.CompressionLevel)
	}
	if st.PartSize < 5<<20 || st.PartSize > 5<<30 {
		p.add(c.line("storage.part_size"), "storage.part_size %s is outside 5MiB..5GiB, the limits of S3 multipart", st.PartSize)
	}
	if st.Concurrency < 1 || st.Concurrency > 64 {
		p.add(c.line("storage.concurrency"), "storage.concurrency %d is outside 1..64", st.Concurrency)
	}
	if st.MultipartThreshold < 5<<20 {
		p.add(c.line("storage.multipart_threshold"), "storage.multipart_threshold %s is below 5MiB, S3's smallest part", st.MultipartThreshold)
	}
}

// checkEncryption validates a region's age recipients; the identity file is only
// needed to restore, so its absence is not an error here.
func (c *Config) checkEncryption(p *problems, at string, e *Encryption) {
	if len(e.Recipients) == 0 {
		p.add(c.line(at+".encryption"), "%s.encryption has no recipients: list the age public keys (age1...) to encrypt to", at)
	}
	for j, r := range e.Recipients {
		if _, err := age.ParseX25519Recipient(r); err != nil {
			p.add(c.line(at+".encryption.recipients["+strconv.Itoa(j)+"]"), "%s.encryption.recipients[%d] is not an age public key (age1...): %v", at, j, err)
		}
	}
}

func (c *Config) validateRegions(p *problems) {
	if len(c.Regions) == 0 {
		p.add(c.line("regions"), "regions: at least one region is needed, for example {name: local, store: file:///var/lib/drkit/local}")
	}
	seen := map[string]int{}
	for i, r := range c.Regions {
		at := "regions[" + strconv.Itoa(i) + "]"
		c.checkName(p, at+".name", "region", r.Name, seen)
		if r.Store == "" {
			p.add(c.line(at), "%s (%s) has no store; give a URL such as file:///var/lib/drkit/%s or s3://bucket/prefix", at, r.Name, r.Name)
			continue
		}
		if msg := checkStoreURL(r.Store); msg != "" {
			p.add(c.line(at+".store"), "%s.store: %s", at, msg)
		}
		if r.Encryption != nil {
			c.checkEncryption(p, at, r.Encryption)
		}
	}
}

func (c *Config) validateClusters(p *problems) {
	seen := map[string]int{}
	for i, cl := range c.Clusters {
		at := "clusters[" + strconv.Itoa(i) + "]"
		c.checkName(p, at+".name", "cluster", cl.Name, seen)
		if !slices.Contains(Engines(), cl.Engine) {
			p.add(c.line(at+".engine"), "%s.engine %q is not known; allowed: %s", at, cl.Engine, strings.Join(Engines(), ", "))
		}
		if cl.Region == "" {
			p.add(c.line(at), "%s (%s) has no region: name the region where its primary runs", at, cl.Name)
		} else if _, ok := c.Region(cl.Region); !ok {
			p.add(c.line(at+".region"), "%s.region %q is not a configured region; configured: %s", at, cl.Region, c.regionList())
		}
		if cl.DSN == "" {
			p.add(c.line(at), "%s (%s) has no dsn: give the connection string drd uses to reach the primary", at, cl.Name)
		}
		c.checkClusterExtras(p, at, cl)
		shipped := map[string]bool{}
		for j, r := range cl.ShipTo {
			path := at + ".ship_to[" + strconv.Itoa(j) + "]"
			if _, ok := c.Region(r); !ok {
				p.add(c.line(path), "%s.ship_to names %q, which is not a configured region; configured: %s", at, r, c.regionList())
			}
			if shipped[r] {
				p.add(c.line(path), "%s.ship_to names %q twice", at, r)
			}
			shipped[r] = true
		}
	}
}

// slotPattern is what PostgreSQL accepts as a replication slot name.
var slotPattern = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func (c *Config) checkClusterExtras(p *problems, at string, cl Cluster) {
	rules := Rules(cl.Engine)
	if _, set := c.lines[at+".required_regions"]; set && !rules.Acknowledges && slices.Contains(Engines(), cl.Engine) {
		// Only a shipper that acknowledges positions to the server (PostgreSQL's
		// slot) can wait for required regions; elsewhere the key would be a
		// promise drkit does not keep.
		p.add(c.line(at+".required_regions"), "%s.required_regions is for %s clusters (it gates the acknowledgements of their log positions); a %s cluster ships to every ship_to region alike: remove it",
			at, strings.Join(enginesWhere(func(r EngineRules) bool { return r.Acknowledges }), ", "), cl.Engine)
	}
	c.checkInShipTo(p, at+".required_regions", cl.RequiredRegions, cl)
	if cl.FlushInterval < Duration(100*time.Millisecond) || cl.FlushInterval > Duration(time.Hour) {
		p.add(c.line(at+".flush_interval"), "%s.flush_interval %s is outside 100ms..1h", at, cl.FlushInterval)
	}
	if rules.CheckDSN != nil && cl.DSN != "" {
		if err := rules.CheckDSN(cl.DSN); err != nil {
			p.add(c.line(at+".dsn"), "%s.dsn: %v", at, err)
		}
	}
	if cl.Slot != "" && !slotPattern.MatchString(cl.Slot) {
		p.add(c.line(at+".slot"), "%s.slot %q is not a valid replication slot name (lower-case letters, digits, _; at most 63)", at, cl.Slot)
	}
	if cl.SyncCheck.Schedule != "" {
		if !rules.SyncCheck && slices.Contains(Engines(), cl.Engine) {
			p.add(c.line(at+".sync_check"), "%s.sync_check: checksum comparisons are for %s clusters, not %s",
				at, strings.Join(enginesWhere(func(r EngineRules) bool { return r.SyncCheck }), ", "), cl.Engine)
		}
		c.checkJob(p, at+".sync_check", cl.SyncCheck.Job)
	}
	if cl.SyncCheck.ChunkRows < 1 {
		p.add(c.line(at+".sync_check.chunk_rows"), "%s.sync_check.chunk_rows must be at least 1", at)
	}
	if cl.BaseBackup.Schedule != "" {
		c.checkJob(p, at+".base_backup", cl.BaseBackup.Job)
	}
	c.checkDrill(p, at, cl, rules)
	c.checkFailover(p, at, cl)
	c.checkSync(p, at, cl, rules)
	if cl.Retention.Full < 0 {
		p.add(c.line(at+".retention.full"), "%s.retention.full must be 1 or more", at)
	}
	c.checkMonitor(p, at, cl)
}

func (c *Config) checkDrill(p *problems, at string, cl Cluster, rules EngineRules) {
	if _, set := c.lines[at+".drill"]; !set && cl.Drill.Schedule == "" {
		return
	}
	if !rules.Drill && slices.Contains(Engines(), cl.Engine) {
		p.add(c.line(at+".drill"), "%s.drill: restore drills are for %s clusters, not %s",
			at, strings.Join(enginesWhere(func(r EngineRules) bool { return r.Drill }), ", "), cl.Engine)
	}
	c.checkJob(p, at+".drill", cl.Drill.Job)
	c.checkInShipTo(p, at+".drill.regions", cl.Drill.Regions, cl)
	if cl.Drill.Sandbox != "" && !filepath.IsAbs(cl.Drill.Sandbox) {
		p.add(c.line(at+".drill.sandbox"), "%s.drill.sandbox %q: give an absolute path (a folder of drd's user that no one else can write)", at, cl.Drill.Sandbox)
	}
	if cl.Drill.Target != "" && !rules.DrillTarget && slices.Contains(Engines(), cl.Engine) {
		p.add(c.line(at+".drill.target"), "%s.drill.target: a drill into a server the config names is for %s clusters; %s drills restore into a new folder of their own (leave target out)",
			at, strings.Join(enginesWhere(func(r EngineRules) bool { return r.DrillTarget }), ", "), cl.Engine)
	}
	if cl.Drill.Target != "" && rules.CheckDSN != nil {
		if err := rules.CheckDSN(cl.Drill.Target); err != nil {
			p.add(c.line(at+".drill.target"), "%s.drill.target: %v", at, err)
		}
	}
	if cl.Drill.MaxDuration < Duration(time.Minute) {
		p.add(c.line(at+".drill.max_duration"), "%s.drill.max_duration %s is under 1m", at, cl.Drill.MaxDuration)
	}
	if cl.Objectives.RTO < 0 || cl.Objectives.RPO < 0 {
		p.add(c.line(at+".objectives"), "%s.objectives must not be negative", at)
	}
}

// tablePattern is an unquoted [schema.]table name, safe to splice into SQL.
var tablePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

func (c *Config) checkMonitor(p *problems, at string, cl Cluster) {
	if iv := cl.Monitor.Interval; iv < Duration(time.Second) || iv > Duration(time.Hour) {
		p.add(c.line(at+".monitor.interval"), "%s.monitor.interval %s is outside 1s..1h", at, iv)
	}
	if t := cl.Monitor.Heartbeat.Table; t != "" && !tablePattern.MatchString(t) {
		p.add(c.line(at+".monitor.heartbeat.table"), "%s.monitor.heartbeat.table %q is not a [schema.]table name (letters, digits, _)", at, t)
	}
	if hf := cl.Monitor.Heartbeat.FlushInterval; hf < cl.FlushInterval || hf > Duration(time.Minute) {
		p.add(c.line(at+".monitor.heartbeat.flush_interval"), "%s.monitor.heartbeat.flush_interval %s is outside flush_interval (%s)..1m", at, hf, cl.FlushInterval)
	}
	seen := map[string]int{}
	for j, r := range cl.Replicas {
		rat := at + ".replicas[" + strconv.Itoa(j) + "]"
		c.checkName(p, rat+".name", "replica", r.Name, seen)
		if _, ok := c.Region(r.Region); !ok {
			p.add(c.line(rat+".region"), "%s.region %q is not a configured region; configured: %s", rat, r.Region, c.regionList())
		}
		if r.DSN == "" {
			p.add(c.line(rat), "%s (%s) has no dsn: give the connection string drd's probes use to reach the replica", rat, r.Name)
		} else if check := Rules(cl.Engine).CheckDSN; check != nil {
			if err := check(r.DSN); err != nil {
				p.add(c.line(rat+".dsn"), "%s.dsn: %v", rat, err)
			}
		}
	}
}

func (c *Config) validateCopies(p *problems) {
	if r := c.Drd.JobsRegion; r != "" {
		if _, ok := c.Region(r); !ok {
			p.add(c.line("drd.jobs_region"), "drd.jobs_region %q is not a configured region; configured: %s", r, c.regionList())
		}
	}
	seen := map[string]int{}
	for i, cp := range c.Copies {
		at := "copies[" + strconv.Itoa(i) + "]"
		if _, ok := c.Cluster(cp.Cluster); !ok {
			p.add(c.line(at+".cluster"), "%s.cluster %q is not a configured cluster", at, cp.Cluster)
		}
		for _, f := range []struct{ field, name string }{{"from", cp.From}, {"to", cp.To}} {
			if _, ok := c.Region(f.name); !ok {
				p.add(c.line(at+"."+f.field), "%s.%s %q is not a configured region; configured: %s", at, f.field, f.name, c.regionList())
			}
		}
		if cp.From == cp.To && cp.From != "" {
			p.add(c.line(at+".to"), "%s copies region %q onto itself: from and to must differ", at, cp.From)
		}
		key := cp.Cluster + "/" + cp.From + "/" + cp.To
		if l := seen[key]; l != 0 {
			p.add(c.line(at), "%s repeats the copy of %s from %s to %s at line %d", at, cp.Cluster, cp.From, cp.To, l)
		}
		seen[key] = max(c.line(at), 1)
		c.checkJob(p, at, cp.Job)
	}
}

// checkJob validates a periodic job's schedule, catch-up policy and jitter.
func (c *Config) checkJob(p *problems, at string, j Job) {
	if j.Schedule == "" {
		p.add(c.line(at), "%s has no schedule: give a cron expression such as \"0 * * * *\" or @hourly", at)
	} else if _, err := cron.ParseStandard(j.Schedule); err != nil {
		p.add(c.line(at+".schedule"), "%s.schedule %q is not a cron expression (minute hour day month weekday, or @daily): %v", at, j.Schedule, err)
	}
	if j.CatchUp != "once" && j.CatchUp != "skip" {
		p.add(c.line(at+".catch_up"), "%s.catch_up %q is not known; allowed: once, skip", at, j.CatchUp)
	}
	if j.Jitter < 0 || j.Jitter > Duration(time.Hour) {
		p.add(c.line(at+".jitter"), "%s.jitter %s is outside 0..1h", at, j.Jitter)
	}
}

// checkName validates a region or cluster name and its uniqueness; seen maps
// names to the line they were first defined on.
func (c *Config) checkName(p *problems, path, what, name string, seen map[string]int) {
	line := c.line(path)
	switch {
	case name == "":
		p.add(line, "every %s needs a name", what)
	case !namePattern.MatchString(name):
		p.add(line, "%s name %q is not allowed: use %s", what, name, nameRule)
	case seen[name] != 0:
		p.add(line, "%s name %q is already used at line %d; names must be unique", what, name, seen[name])
	default:
		seen[name] = line
	}
}

func (c *Config) regionList() string {
	names := make([]string, len(c.Regions))
	for i, r := range c.Regions {
		names[i] = r.Name
	}
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// checkStoreURL returns what is wrong with a store URL, or "": the storage
// adapters registered its scheme and say what their URLs need.
func checkStoreURL(raw string) string {
	if err := storage.CheckURL(raw); err != nil {
		return err.Error()
	}
	return ""
}

// checkInShipTo reports each region of the list at key that the cluster does
// not ship to: a region drkit never writes can neither gate nor be drilled.
func (c *Config) checkInShipTo(p *problems, key string, regions []string, cl Cluster) {
	for j, r := range regions {
		if !slices.Contains(cl.ShipTo, r) {
			p.add(c.line(key+"["+strconv.Itoa(j)+"]"), "%s names %q, which is not in its ship_to (%s)", key, r, strings.Join(cl.ShipTo, ", "))
		}
	}
}

func (c *Config) checkSync(p *problems, at string, cl Cluster, rules EngineRules) {
	y := cl.Sync
	at += ".sync"
	switch y.Mode {
	case "off", "remote_write", "remote_durable":
	default:
		p.add(c.line(at+".mode"), "%s.mode %q: off, remote_write or remote_durable", at, y.Mode)
		return
	}
	if y.Mode == "off" {
		return
	}
	if !rules.Sync && slices.Contains(Engines(), cl.Engine) {
		p.add(c.line(at), "%s: zero-RPO mode is for %s clusters, whose servers can wait for drd before a commit returns; a %s cluster cannot: remove it",
			at, strings.Join(enginesWhere(func(r EngineRules) bool { return r.Sync }), ", "), cl.Engine)
	}
	c.checkInShipTo(p, at+".regions", y.Regions, cl)
	if y.Timeout < Duration(100*time.Millisecond) || y.Timeout > Duration(time.Hour) {
		p.add(c.line(at+".timeout"), "%s.timeout %s is outside 100ms..1h", at, y.Timeout)
	}
}

func (c *Config) checkFailover(p *problems, at string, cl Cluster) {
	f := cl.Failover
	if f == nil {
		return
	}
	at += ".failover"
	if net.ParseIP(f.PublicIP) == nil {
		p.add(c.line(at+".public_ip"), "%s.public_ip %q is not an IP address", at, f.PublicIP)
	}
	if f.Provider != "" && f.Provider != "outscale" && f.Provider != "ec2" {
		p.add(c.line(at+".provider"), "%s.provider %q: outscale or ec2", at, f.Provider)
	}
	if !cloudRegion.MatchString(f.Region) {
		p.add(c.line(at+".region"), "%s.region %q: the cloud Region of the IP and the VMs (eu-west-2)", at, f.Region)
	}
	if len(f.VMs) == 0 {
		p.add(c.line(at), "%s.vms is empty: map each replica that may be promoted to its stand-by VM", at)
	}
	if f.Port < 0 || f.Port > 65535 {
		p.add(c.line(at+".port"), "%s.port %d is not a port", at, f.Port)
	}
}
