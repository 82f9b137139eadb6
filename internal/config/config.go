package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// DefaultListen is where drd serves /healthz, /readyz, /metrics and its API unless
// the config says otherwise. Loopback by default: the API can start backups.
const DefaultListen = "127.0.0.1:9580"

// DefaultFile is the config path used when neither --config nor $DRKIT_CONFIG is set.
const DefaultFile = "drkit.yaml"

// EnvFile names the environment variable that points at the config file.
const EnvFile = "DRKIT_CONFIG"

// Config is the whole configuration file.
type Config struct {
	Drd      Drd       `yaml:"drd" json:"drd"`
	Storage  Storage   `yaml:"storage" json:"storage"`
	Regions  []Region  `yaml:"regions" json:"regions"`
	Clusters []Cluster `yaml:"clusters" json:"clusters"`
	// Copies are scheduled copies of backup sets between regions.
	Copies []Copy `yaml:"copies,omitempty" json:"copies,omitempty"`
	// EC2 configures the EC2-compatible API of image and volume snapshot copies.
	EC2 EC2 `yaml:"ec2,omitempty" json:"ec2,omitempty"`
	// Outscale configures the OUTSCALE API of entries with provider: outscale.
	Outscale Outscale `yaml:"outscale,omitempty" json:"outscale,omitempty"`
	// Images are scheduled cross-region copies of machine images (AMIs).
	Images []ImageCopy `yaml:"images,omitempty" json:"images,omitempty"`
	// VolumeSnapshots are scheduled cross-region copies of EBS volume snapshots.
	VolumeSnapshots []SnapshotCopy `yaml:"volume_snapshots,omitempty" json:"volume_snapshots,omitempty"`

	// Path is the file the config was read from ("" when parsed from memory).
	Path string `yaml:"-" json:"-"`
	// lines maps a field path such as "clusters[1].engine" to its line in Path.
	lines map[string]int
}

// Drd configures the daemon itself.
type Drd struct {
	// Listen is the host:port of the HTTP listener.
	Listen string `yaml:"listen" json:"listen"`
	// StateDir holds local caches (resumable-upload state). Nothing in it is a
	// record: it can be deleted and is rebuilt from the stores and the database.
	StateDir string `yaml:"state_dir,omitempty" json:"state_dir,omitempty"`
	// API secures drd's HTTP listener.
	API API `yaml:"api,omitempty" json:"api,omitempty"`
	// JobsRegion is the region whose store keeps the scheduled jobs' records
	// (last runs, history, the lease of each run), so that a restarted or
	// moved drd knows what ran (default: the first region).
	JobsRegion string `yaml:"jobs_region,omitempty" json:"jobs_region,omitempty"`
	// HA runs several drd on one config: each cluster's log shipping and
	// scheduled jobs run on the drd holding the cluster's lease in the jobs
	// region, and another takes over within LeaseTTL when it stops.
	HA bool `yaml:"ha,omitempty" json:"ha,omitempty"`
	// LeaseTTL is how long a holder's lease lasts unrenewed (default 10s).
	LeaseTTL Duration `yaml:"lease_ttl,omitempty" json:"lease_ttl,omitempty"`
}

// Copy is a scheduled copy of a cluster's backup set (base backups and the
// log they need) from one region's store to another's.
type Copy struct {
	Cluster string `yaml:"cluster" json:"cluster"`
	From    string `yaml:"from" json:"from"`
	To      string `yaml:"to" json:"to"`
	Job     `yaml:",inline" json:",inline"`
}

// Job is when a periodic job runs.
type Job struct {
	// Schedule is a cron expression ("0 * * * *", "@hourly").
	Schedule string `yaml:"schedule" json:"schedule"`
	// CatchUp says what a drd that was not running at an activation does when
	// it starts: "once" runs the job once for every missed activation together
	// (default), "skip" waits for the next one.
	CatchUp string `yaml:"catch_up,omitempty" json:"catch_up,omitempty"`
	// Jitter delays each run by a random time up to it, so that jobs on the
	// same schedule do not all hit the stores at once.
	Jitter Duration `yaml:"jitter,omitempty" json:"jitter,omitempty"`
}

// EC2 configures the EC2 API (or an EC2-compatible cloud's) that image and
// volume snapshot copies call. Credentials come from the AWS SDK's usual
// chain (environment, shared config and credentials files, instance role).
type EC2 struct {
	// Profile is the shared-config profile to use unless an entry names its own.
	Profile string `yaml:"profile,omitempty" json:"profile,omitempty"`
	// Endpoints maps a region to its API URL, for EC2-compatible clouds
	// (default: AWS's endpoint of the region).
	Endpoints map[string]string `yaml:"endpoints,omitempty" json:"endpoints,omitempty"`
	// MaxConcurrentCopies caps the copies in flight per destination region
	// (default 5; AWS allows 20 concurrent snapshot copies per region).
	MaxConcurrentCopies int `yaml:"max_concurrent_copies,omitempty" json:"max_concurrent_copies,omitempty"`
	// CopyTimeout is how long a copy may stay pending before it is given up,
	// deleted and reported (default 6h).
	CopyTimeout Duration `yaml:"copy_timeout,omitempty" json:"copy_timeout,omitempty"`
	// PollInterval is the first wait between checks of a pending copy; it
	// grows up to 2 minutes (default 15s, the SDK waiters' own).
	PollInterval Duration `yaml:"poll_interval,omitempty" json:"poll_interval,omitempty"`
}

// Outscale configures OUTSCALE (entries with provider: outscale): its API
// (OAPI, signed with the access key and secret key in the environment
// variables named) and, per Region, the OOS bucket copies go through
// (export, copy, import). Copy limits and timeouts are ec2:'s.
type Outscale struct {
	// Endpoints maps a Region to its OAPI URL (default
	// https://api.<region>.outscale.com/api/v1).
	Endpoints map[string]string `yaml:"endpoints,omitempty" json:"endpoints,omitempty"`
	// OOS maps a Region to its transfer bucket: an s3:// store URL
	// (endpoint https://oos.<region>.outscale.com). Every source_region and
	// to of an outscale entry needs one.
	OOS map[string]string `yaml:"oos,omitempty" json:"oos,omitempty"`
	// DiskImageFormat is the exports' format: qcow2 (default) or raw.
	DiskImageFormat string `yaml:"disk_image_format,omitempty" json:"disk_image_format,omitempty"`
	// AccessKeyEnv and SecretKeyEnv name the environment variables holding
	// the keys (default OSC_ACCESS_KEY and OSC_SECRET_KEY, as octl's).
	AccessKeyEnv string `yaml:"access_key_env,omitempty" json:"access_key_env,omitempty"`
	SecretKeyEnv string `yaml:"secret_key_env,omitempty" json:"secret_key_env,omitempty"`
}

// MachineCopy is what image and volume snapshot copies share: which
// resources of a source region are copied where, when, and what is kept.
type MachineCopy struct {
	// Name identifies the entry; copies are tagged with it.
	Name string `yaml:"name" json:"name"`
	// Provider is the cloud: ec2 (default: AWS, or an EC2-compatible API at
	// ec2.endpoints) or outscale (the outscale: block).
	Provider string `yaml:"provider,omitempty" json:"provider,omitempty"`
	// Profile overrides ec2.profile (another account or role).
	Profile      string `yaml:"profile,omitempty" json:"profile,omitempty"`
	SourceRegion string `yaml:"source_region" json:"source_region"`
	// Filters choose the source resources.
	Filters Filters `yaml:"filters,omitempty" json:"filters,omitempty"`
	// To lists the destination regions.
	To  []string `yaml:"to" json:"to"`
	Job `yaml:",inline" json:",inline"`
	// Keep is how many of the newest sources are kept copied in each
	// destination; KeepWithin keeps those younger than it too. Neither set
	// keeps everything. The newest good copy is always kept.
	Keep       int      `yaml:"keep,omitempty" json:"keep,omitempty"`
	KeepWithin Duration `yaml:"keep_within,omitempty" json:"keep_within,omitempty"`
	// Encrypted encrypts the copies, with KMSKey (default: the account's EBS key).
	Encrypted bool   `yaml:"encrypted,omitempty" json:"encrypted,omitempty"`
	KMSKey    string `yaml:"kms_key,omitempty" json:"kms_key,omitempty"`
}

// Filters select source images or snapshots: all of the tags and, if given,
// only the listed ids.
type Filters struct {
	Tags map[string]string `yaml:"tags,omitempty" json:"tags,omitempty"`
	IDs  []string          `yaml:"ids,omitempty" json:"ids,omitempty"`
}

// ImageCopy copies machine images (and so their snapshots).
type ImageCopy struct {
	MachineCopy `yaml:",inline" json:",inline"`
}

// SnapshotCopy copies volume snapshots, optionally taking them first.
type SnapshotCopy struct {
	MachineCopy `yaml:",inline" json:",inline"`
	// Create, if set, snapshots the volumes with these tags in the source
	// region at each run before copying.
	Create *CreateSnapshots `yaml:"create,omitempty" json:"create,omitempty"`
}

// CreateSnapshots says which volumes to snapshot.
type CreateSnapshots struct {
	VolumeTags map[string]string `yaml:"volume_tags" json:"volume_tags"`
}

// API configures authentication and TLS of drd's HTTP listener.
type API struct {
	// TokensFile holds bearer tokens, one per line ("name:token" or "token";
	// # comments). Without it the read-only endpoints are open and the ones
	// that act (start a backup) are refused.
	TokensFile string `yaml:"tokens_file,omitempty" json:"tokens_file,omitempty"`
	// ProtectAll requires a token on /healthz, /readyz and /metrics too.
	ProtectAll bool `yaml:"protect_all,omitempty" json:"protect_all,omitempty"`
	// TLS serves HTTPS; with ClientCAFile, clients must present a certificate
	// signed by that CA.
	TLS *TLS `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// TLS names PEM files.
type TLS struct {
	CertFile     string `yaml:"cert_file" json:"cert_file"`
	KeyFile      string `yaml:"key_file" json:"key_file"`
	ClientCAFile string `yaml:"client_ca_file,omitempty" json:"client_ca_file,omitempty"`
}

// Storage tunes how objects are written to every region.
type Storage struct {
	// Compression is zstd or none.
	Compression string `yaml:"compression" json:"compression"`
	// CompressionLevel is zstd's level, 1 (fastest) to 22 (smallest). The
	// default is 1: base backups and log shipping run on the database's host,
	// where CPU is the scarce thing, and on database pages level 3 cost 45%
	// more CPU for the same size (pgbench: 42 MB from 905 MB either way).
	// PostgreSQL base backups are compressed by the server at this level.
	CompressionLevel int `yaml:"compression_level" json:"compression_level"`
	// PartSize is the multipart part size (it grows for objects that would need
	// more than 10,000 parts); at least 5MiB.
	PartSize ByteSize `yaml:"part_size" json:"part_size"`
	// Concurrency is how many parts upload at once.
	Concurrency int `yaml:"concurrency" json:"concurrency"`
	// MultipartThreshold: objects of known size above it are uploaded in parts.
	MultipartThreshold ByteSize `yaml:"multipart_threshold" json:"multipart_threshold"`
	// SweepAfter is the age at which drd aborts abandoned multipart uploads.
	SweepAfter Duration `yaml:"sweep_after" json:"sweep_after"`
}

// Encryption configures client-side age encryption of one region.
type Encryption struct {
	// Recipients are age public keys (age1...): all drd needs to write.
	Recipients []string `yaml:"recipients" json:"recipients"`
	// IdentityFile holds the age private key(s); needed only to restore.
	IdentityFile string `yaml:"identity_file,omitempty" json:"identity_file,omitempty"`
}

// Region is one object store that holds a self-sufficient copy of the catalog.
type Region struct {
	Name  string `yaml:"name" json:"name"`
	Store string `yaml:"store" json:"store"`
	// Encryption, if set, encrypts everything drkit writes to this region.
	Encryption *Encryption `yaml:"encryption,omitempty" json:"encryption,omitempty"`
}

// Cluster is one database whose logs and backups drd ships.
type Cluster struct {
	Name   string `yaml:"name" json:"name"`
	Engine string `yaml:"engine" json:"engine"`
	// Region is where the primary runs.
	Region string `yaml:"region" json:"region"`
	DSN    string `yaml:"dsn" json:"dsn"`
	// ShipTo lists the regions that receive logs and backups; empty means every region.
	ShipTo []string `yaml:"ship_to" json:"ship_to"`
	// RequiredRegions must hold WAL durably before it is acknowledged to the
	// database (default: every ship_to region).
	RequiredRegions []string `yaml:"required_regions" json:"required_regions"`
	// FlushInterval bounds how long received WAL waits before it is flushed to
	// the regions: the exposure window of a disaster (default 1s).
	FlushInterval Duration `yaml:"flush_interval" json:"flush_interval"`
	// Slot is the replication slot drd streams from (default drkit_<name>).
	Slot string `yaml:"slot,omitempty" json:"slot,omitempty"`
	// ServerID is the replica server_id drd registers with to stream a MySQL
	// binlog (default: derived from the cluster's name, in 2^31..2^31+2^30).
	ServerID uint32 `yaml:"server_id,omitempty" json:"server_id,omitempty"`
	// BaseBackup schedules base backups.
	BaseBackup BaseBackup `yaml:"base_backup,omitempty" json:"base_backup,omitempty"`
	// Retention says which backups (and the WAL they need) each region keeps.
	Retention Retention `yaml:"retention,omitempty" json:"retention,omitempty"`
	// Replicas are the servers that replicate this primary; drd's probes
	// measure their lag and sync state.
	Replicas []Replica `yaml:"replicas,omitempty" json:"replicas,omitempty"`
	// Hosts are the hosts (names, addresses or patterns like *.db.internal)
	// that replicas registered in the stores (drctl replica create) and
	// promoted primaries may be on, besides dsn's and replicas' hosts: drd
	// connects with the cluster's password to no other host a store names.
	Hosts []string `yaml:"hosts,omitempty" json:"hosts,omitempty"`
	// Monitor configures the probes and the heartbeat.
	Monitor Monitor `yaml:"monitor,omitempty" json:"monitor,omitempty"`
	// SyncCheck schedules drd's chunked checksum comparison of the primary
	// with each replica (PostgreSQL and MySQL).
	SyncCheck SyncCheck `yaml:"sync_check,omitempty" json:"sync_check,omitempty"`
	// Drill schedules drd's restore drills of the cluster's regions.
	Drill Drill `yaml:"drill,omitempty" json:"drill,omitempty"`
	// Objectives are the recovery objectives drills are held to (alerts).
	Objectives Objectives `yaml:"objectives,omitempty" json:"objectives,omitempty"`
	// Failover, if set, moves a public IP to the promoted replica's
	// stand-by VM after drctl promote.
	Failover *Failover `yaml:"failover,omitempty" json:"failover,omitempty"`
	// Sync makes commits wait until the sync regions hold their log (zero
	// RPO); off by default.
	Sync Sync `yaml:"sync,omitempty" json:"sync,omitempty"`
}

// Sync is a cluster's zero-RPO mode: the server's synchronous replication
// (PostgreSQL synchronous_standby_names, MariaDB semi-sync) holds each commit
// until drd has stored its log in every region of Regions. If drd or those
// regions stop, PostgreSQL's commits wait and MariaDB's fall back to
// asynchronous after rpl_semi_sync_master_timeout; drkit_sync_stalled says so.
type Sync struct {
	// Mode is off (default), remote_write (the regions' stores accepted the
	// log; file:// without fsync) or remote_durable (they hold it durably).
	Mode string `yaml:"mode" json:"mode"`
	// Regions are the regions a commit waits for (default: required_regions).
	Regions []string `yaml:"regions,omitempty" json:"regions,omitempty"`
	// Timeout is how long a commit may wait before drd reports the cluster
	// stalled (default 5s).
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// DefaultSyncTimeout is sync.timeout when the file leaves it out.
const DefaultSyncTimeout = Duration(5 * time.Second)

// Failover moves a public IP to a stand-by VM when a replica is promoted
// (OUTSCALE LinkPublicIp with AllowRelink; AWS AssociateAddress with
// AllowReassociation), then waits until it answers on the database's port.
type Failover struct {
	PublicIP string `yaml:"public_ip" json:"public_ip"`
	// Provider is outscale (default) or ec2.
	Provider string `yaml:"provider,omitempty" json:"provider,omitempty"`
	// Region is the cloud Region of the IP and the VMs (a public IP moves
	// within its Region only).
	Region string `yaml:"region" json:"region"`
	// VMs maps a replica's name to the VM the IP moves to when it is
	// promoted.
	VMs map[string]string `yaml:"vms" json:"vms"`
	// Port is where the IP must answer after the move (default: the
	// promoted replica's dsn port).
	Port int `yaml:"port,omitempty" json:"port,omitempty"`
	// Wait bounds the wait for that answer (default 2m).
	Wait Duration `yaml:"wait,omitempty" json:"wait,omitempty"`
}

// Drill schedules restore drills (drctl drill): each run restores the
// cluster from each of Regions alone into a sandbox and measures RTO and RPO.
type Drill struct {
	Job `yaml:",inline" json:",inline"`
	// Regions are the regions drilled (default: ship_to).
	Regions []string `yaml:"regions,omitempty" json:"regions,omitempty"`
	// MaxDuration bounds one region's drill (default 1h).
	MaxDuration Duration `yaml:"max_duration,omitempty" json:"max_duration,omitempty"`
	// Sandbox is the folder sandboxes are made in (default: $TMPDIR/drkit-drill).
	Sandbox string `yaml:"sandbox,omitempty" json:"sandbox,omitempty"`
	// DeepCheck also checks the whole restored data (PostgreSQL: pg_amcheck).
	DeepCheck bool `yaml:"deep_check,omitempty" json:"deep_check,omitempty"`
	// Target, if set, is the dsn of a server kept for drills, which drills
	// restore into (it must be empty) and empty afterwards, instead of one
	// they start (MariaDB, Redis, MongoDB).
	Target string `yaml:"target,omitempty" json:"target,omitempty"`
}

// DefaultDrillMaxDuration bounds a region's drill unless the config says.
const DefaultDrillMaxDuration = Duration(time.Hour)

// Objectives are a cluster's recovery time and point objectives; zero is
// none.
type Objectives struct {
	RTO Duration `yaml:"rto,omitempty" json:"rto,omitempty"`
	RPO Duration `yaml:"rpo,omitempty" json:"rpo,omitempty"`
}

// SyncCheck schedules replica checksum comparisons: schedule (empty: only
// drctl replica check runs them), catch_up, jitter, and the chunk size.
type SyncCheck struct {
	Job `yaml:",inline" json:",inline"`
	// ChunkRows is the rows per compared chunk (default 1000).
	ChunkRows int `yaml:"chunk_rows,omitempty" json:"chunk_rows,omitempty"`
}

// DefaultChunkRows is the rows per chunk of a replica check.
const DefaultChunkRows = 1000

// Replica is a server replicating a cluster's primary.
type Replica struct {
	Name string `yaml:"name" json:"name"`
	// Region is where the replica runs.
	Region string `yaml:"region" json:"region"`
	// DSN reaches the replica with the same engine's syntax as the cluster's dsn.
	DSN string `yaml:"dsn" json:"dsn"`
}

// Monitor configures a cluster's probes.
type Monitor struct {
	// Interval between probes of the primary and every replica (default 5s).
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Heartbeat is the row drd writes on the primary every second and reads on
	// each replica, for lag in true seconds (as pt-heartbeat does).
	Heartbeat Heartbeat `yaml:"heartbeat,omitempty" json:"heartbeat,omitempty"`
}

// Heartbeat configures the heartbeat writer. It runs only for clusters with
// replicas or a drill schedule.
type Heartbeat struct {
	// Disabled turns the writer off: lag then comes from the engine's own view.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	// Table is [schema.]table (default: drkit_heartbeat in the DSN's database on
	// PostgreSQL, drkit.heartbeat on MySQL). drd creates it when missing.
	// On Redis it is the key prefix: the key is <table>:<cluster> in the
	// URL's database (default drkit_heartbeat:<cluster>).
	Table string `yaml:"table,omitempty" json:"table,omitempty"`
	// DSN is used for the writes when the cluster's dsn may not write (default: dsn).
	DSN string `yaml:"dsn,omitempty" json:"dsn,omitempty"`
	// FlushInterval is how long WAL or binlog that holds nothing but
	// heartbeats may wait before drd ships it (default 10s, at least the
	// cluster's flush_interval). A user's write among them ships within
	// flush_interval as always; without this an idle database with replicas
	// would cost a log object per region every second.
	FlushInterval Duration `yaml:"flush_interval,omitempty" json:"flush_interval,omitempty"`
}

// HeartbeatDSN is the DSN the heartbeat writer connects with.
func (cl Cluster) HeartbeatDSN() string {
	if cl.Monitor.Heartbeat.DSN != "" {
		return cl.Monitor.Heartbeat.DSN
	}
	return cl.DSN
}

// BaseBackup configures scheduled base backups: schedule (empty means on
// demand only), catch_up and jitter, as every periodic job.
type BaseBackup struct {
	Job `yaml:",inline" json:",inline"`
}

// Retention keeps the newest Full backups and/or those younger than Window;
// the newest backup is always kept.
type Retention struct {
	Full   int      `yaml:"full,omitempty" json:"full,omitempty"`
	Window Duration `yaml:"window,omitempty" json:"window,omitempty"`
}

// Resolve returns the config path to use: flag, else $DRKIT_CONFIG, else ./drkit.yaml.
func Resolve(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv(EnvFile); env != "" {
		return env
	}
	return DefaultFile
}

// Load reads, expands, decodes and validates the file at path. The returned error
// joins every problem found, each prefixed with path:line.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("config file %s does not exist: pass --config or set $%s", path, EnvFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse decodes and validates data as if read from path. lookup resolves ${VAR}
// references (os.LookupEnv in production; a map in tests).
func Parse(path string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	cfg := &Config{Path: path, lines: map[string]int{}}
	d := decoder{file: path, lookup: lookup, lines: cfg.lines}
	if err := d.decode(data, cfg); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Storage defaults.
const (
	DefaultCompressionLevel   = 1
	DefaultPartSize           = 16 << 20
	DefaultConcurrency        = 4
	DefaultMultipartThreshold = 100 << 20
	DefaultSweepAfter         = Duration(24 * time.Hour)
	DefaultFlushInterval      = Duration(time.Second)
	DefaultProbeInterval      = Duration(5 * time.Second)
	DefaultHeartbeatFlush     = Duration(10 * time.Second)
	// DefaultMaxConcurrentCopies leaves room under AWS's 20 concurrent
	// snapshot copies per region for other tools' copies.
	DefaultMaxConcurrentCopies = 5
	DefaultCopyTimeout         = Duration(6 * time.Hour)
	DefaultPollInterval        = Duration(15 * time.Second)
)

func defaultCatchUp(j *Job) {
	if j.CatchUp == "" {
		j.CatchUp = "once"
	}
}

func (c *Config) applyDefaults() {
	if c.Drd.Listen == "" {
		c.Drd.Listen = DefaultListen
	}
	st := &c.Storage
	if st.Compression == "" {
		st.Compression = "zstd"
	}
	if st.CompressionLevel == 0 {
		st.CompressionLevel = DefaultCompressionLevel
	}
	if st.PartSize == 0 {
		st.PartSize = DefaultPartSize
	}
	if st.Concurrency == 0 {
		st.Concurrency = DefaultConcurrency
	}
	if st.MultipartThreshold == 0 {
		st.MultipartThreshold = DefaultMultipartThreshold
	}
	if st.SweepAfter == 0 {
		st.SweepAfter = DefaultSweepAfter
	}
	if c.Drd.JobsRegion == "" && len(c.Regions) > 0 {
		c.Drd.JobsRegion = c.Regions[0].Name
	}
	for i := range c.Copies {
		defaultCatchUp(&c.Copies[i].Job)
	}
	for i := range c.Images {
		defaultCatchUp(&c.Images[i].Job)
	}
	for i := range c.VolumeSnapshots {
		defaultCatchUp(&c.VolumeSnapshots[i].Job)
	}
	if c.Drd.LeaseTTL == 0 {
		c.Drd.LeaseTTL = Duration(10 * time.Second)
	}
	if c.EC2.MaxConcurrentCopies == 0 {
		c.EC2.MaxConcurrentCopies = DefaultMaxConcurrentCopies
	}
	if c.EC2.CopyTimeout == 0 {
		c.EC2.CopyTimeout = DefaultCopyTimeout
	}
	if c.EC2.PollInterval == 0 {
		c.EC2.PollInterval = DefaultPollInterval
	}
	if c.Outscale.DiskImageFormat == "" {
		c.Outscale.DiskImageFormat = "qcow2"
	}
	if c.Outscale.AccessKeyEnv == "" {
		c.Outscale.AccessKeyEnv = "OSC_ACCESS_KEY"
	}
	if c.Outscale.SecretKeyEnv == "" {
		c.Outscale.SecretKeyEnv = "OSC_SECRET_KEY"
	}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		if cl.BaseBackup.Schedule != "" {
			defaultCatchUp(&cl.BaseBackup.Job)
		}
		if cl.SyncCheck.Schedule != "" {
			defaultCatchUp(&cl.SyncCheck.Job)
		}
		if cl.SyncCheck.ChunkRows == 0 {
			cl.SyncCheck.ChunkRows = DefaultChunkRows
		}
		if cl.Drill.Schedule != "" {
			defaultCatchUp(&cl.Drill.Job)
			if cl.Drill.MaxDuration == 0 {
				cl.Drill.MaxDuration = DefaultDrillMaxDuration
			}
		}
		if len(cl.ShipTo) == 0 {
			for _, r := range c.Regions {
				cl.ShipTo = append(cl.ShipTo, r.Name)
			}
		}
		if len(cl.RequiredRegions) == 0 {
			cl.RequiredRegions = append([]string(nil), cl.ShipTo...)
		}
		if cl.FlushInterval == 0 {
			cl.FlushInterval = DefaultFlushInterval
		}
		if cl.Sync.Mode == "" {
			cl.Sync.Mode = "off"
		}
		if cl.Sync.Mode != "off" && len(cl.Sync.Regions) == 0 {
			cl.Sync.Regions = append([]string(nil), cl.RequiredRegions...)
		}
		if cl.Sync.Timeout == 0 {
			cl.Sync.Timeout = DefaultSyncTimeout
		}
		if f := cl.Failover; f != nil {
			if f.Provider == "" {
				f.Provider = "outscale"
			}
			if f.Wait == 0 {
				f.Wait = Duration(2 * time.Minute)
			}
		}
		if cl.Monitor.Interval == 0 {
			cl.Monitor.Interval = DefaultProbeInterval
		}
		hb := &cl.Monitor.Heartbeat
		if hb.FlushInterval == 0 {
			hb.FlushInterval = max(DefaultHeartbeatFlush, cl.FlushInterval)
		}
		if d := Rules(cl.Engine).Defaults; d != nil {
			d(cl)
		}
	}
}

// StateDir returns the folder for local caches: drd.state_dir, else
// $XDG_STATE_HOME/drkit, else ~/.local/state/drkit.
func (c *Config) StateDir() string {
	if c.Drd.StateDir != "" {
		return c.Drd.StateDir
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "drkit")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "drkit")
	}
	return filepath.Join(os.TempDir(), "drkit-state")
}

// Region returns the region called name.
func (c *Config) Region(name string) (Region, bool) {
	for _, r := range c.Regions {
		if r.Name == name {
			return r, true
		}
	}
	return Region{}, false
}

// KeyPrefixes are the folders drkit writes in a store: one per cluster, and
// its own (schedule records). Bucket-wide work such as sweeping abandoned
// uploads touches nothing else.
func (c *Config) KeyPrefixes() []string {
	out := []string{"_drkit/"}
	for _, cl := range c.Clusters {
		out = append(out, cl.Name+"/")
	}
	return out
}

// Cluster returns the cluster called name.
func (c *Config) Cluster(name string) (Cluster, bool) {
	for _, cl := range c.Clusters {
		if cl.Name == name {
			return cl, true
		}
	}
	return Cluster{}, false
}
