package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/config"
	_ "github.com/drkit/drkit/internal/engine/all" // the engines' config rules
	_ "github.com/drkit/drkit/storage/file"
	_ "github.com/drkit/drkit/storage/s3"
)

var update = flag.Bool("update", false, "rewrite golden files")

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const valid = `drd:
  listen: 127.0.0.1:9580
regions:
  - name: eu-west-1
    store: s3://dr-euw1/prod?endpoint=https://s3.eu-west-1.amazonaws.com&region=eu-west-1
  - name: us-east-1
    store: file:///var/lib/drkit/us-east-1
clusters:
  - name: orders
    engine: postgres
    region: eu-west-1
    dsn: postgres://replicator@10.0.0.5:5432/postgres
`

func TestParseValidAppliesDefaults(t *testing.T) {
	cfg, err := config.Parse("drkit.yaml", []byte(valid), env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got := cfg.Clusters[0].ShipTo
	if strings.Join(got, ",") != "eu-west-1,us-east-1" {
		t.Errorf("ship_to default = %v, want every region", got)
	}
	if cfg.Drd.Listen != "127.0.0.1:9580" {
		t.Errorf("listen = %q", cfg.Drd.Listen)
	}
	cfg, err = config.Parse("x.yaml", []byte("regions: [{name: a, store: 'file:///tmp/a'}]\n"), env(nil))
	if err != nil {
		t.Fatalf("Parse minimal: %v", err)
	}
	if cfg.Drd.Listen != config.DefaultListen {
		t.Errorf("default listen = %q, want %q", cfg.Drd.Listen, config.DefaultListen)
	}
}

func TestParseExpandsEnvironment(t *testing.T) {
	src := `drd:
  listen: ${HOST}:${PORT:-9999}
regions:
  - name: r1
    store: file://${ROOT}/r1
clusters:
  - {name: c, engine: postgres, region: r1, dsn: "postgres://u:${PGPASS}@h/db"}
`
	cfg, err := config.Parse("e.yaml", []byte(src), env(map[string]string{"HOST": "0.0.0.0", "ROOT": "/srv", "PGPASS": "s3cr:t"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Drd.Listen != "0.0.0.0:9999" {
		t.Errorf("listen = %q, want 0.0.0.0:9999", cfg.Drd.Listen)
	}
	if cfg.Regions[0].Store != "file:///srv/r1" {
		t.Errorf("store = %q", cfg.Regions[0].Store)
	}
	if cfg.Clusters[0].DSN != "postgres://u:s3cr:t@h/db" {
		t.Errorf("dsn = %q", cfg.Clusters[0].DSN)
	}
}

// TestParseErrors covers every error class; each case names the line and the words
// an operator needs to fix it.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // every string must appear in the error
	}{
		{"bad yaml", "regions:\n  - name: a\n\tstore: x\n", []string{"c.yaml:2:", "tab character"}},
		{"empty file", "", []string{"c.yaml: the file is empty"}},
		{"replica in unknown region", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: postgres://h/db\n    replicas:\n      - {name: r1, region: b, dsn: postgres://r/db}\n      - {name: r1, region: a}\n", []string{"c.yaml:8:", `replicas[0].region "b" is not a configured region`, "c.yaml:9:", `replica name "r1" is already used at line 8`, "replicas[1] (r1) has no dsn"}},
		{"bad monitor", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: postgres://h/db\n    monitor: {interval: 100ms, heartbeat: {table: 'x; drop'}}\n", []string{"c.yaml:7:", "monitor.interval 100ms is outside 1s..1h", `heartbeat.table "x; drop" is not a [schema.]table name`}},
		{"heartbeat flush below flush_interval", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: mysql\n    region: a\n    dsn: 'u@tcp(h:3306)/'\n    flush_interval: 2s\n    monitor: {heartbeat: {flush_interval: 1s}}\n", []string{"c.yaml:8:", "monitor.heartbeat.flush_interval 1s is outside flush_interval (2s)..1m"}},
		{"unknown top key", "regions: [{name: a, store: 'file:///a'}]\nclsuters: []\n", []string{"c.yaml:2:", `unknown key "clsuters" in the top level`, "allowed: clusters, copies, drd, ec2, images, outscale, regions, storage, volume_snapshots"}},
		{"unknown nested key", "regions:\n  - name: a\n    store: file:///a\n    sotre: x\n", []string{"c.yaml:4:", `unknown key "sotre" in regions[0]`, "allowed: encryption, name, store"}},
		{"wrong kind", "regions:\n  name: a\n", []string{"c.yaml:2:", "regions must be a list"}},
		{"duplicate key", "regions: []\nregions: []\n", []string{"c.yaml:2:", `"regions" already defined`}},
		{"no regions", "drd: {listen: ':1'}\n", []string{"at least one region"}},
		{"duplicate region", "regions:\n  - {name: a, store: 'file:///a'}\n  - {name: a, store: 'file:///b'}\n", []string{"c.yaml:3:", `region name "a" is already used at line 2`}},
		{"bad region name", "regions:\n  - {name: EU West, store: 'file:///a'}\n", []string{"c.yaml:2:", `region name "EU West" is not allowed`}},
		{"duplicate cluster", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - {name: c, engine: redis, region: a, dsn: 'redis://h'}\n  - {name: c, engine: redis, region: a, dsn: 'redis://h'}\n", []string{"c.yaml:4:", `cluster name "c" is already used at line 3`}},
		{"drill region not shipped to", "regions: [{name: a, store: 'file:///a'}, {name: b, store: 'file:///b'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: postgres://h/db\n    ship_to: [a]\n    drill: {schedule: '@daily', regions: [b]}\n", []string{"c.yaml:8:", `clusters[0].drill.regions names "b", which is not in its ship_to (a)`}},
		{"drill without schedule", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: postgres://h/db\n    drill: {regions: [a]}\n", []string{"c.yaml:7:", "clusters[0].drill has no schedule"}},
		{"drill max_duration", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: postgres://h/db\n    drill:\n      schedule: '@daily'\n      max_duration: 10s\n", []string{"c.yaml:9:", "clusters[0].drill.max_duration 10s is under 1m"}},
		{"drill target on postgres", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: postgres://h/db\n    drill:\n      schedule: '@daily'\n      target: postgres://drill/db\n", []string{"c.yaml:9:", "clusters[0].drill.target: a drill into a server the config names is for", "postgres drills restore into a new folder"}},
		{"unknown engine", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: oracle\n    region: a\n    dsn: x\n", []string{"c.yaml:4:", `"oracle" is not known`, "allowed: mongodb, mysql, postgres, redis"}},
		{"unknown region", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: mysql\n    region: b\n    dsn: x\n", []string{"c.yaml:5:", `region "b" is not a configured region; configured: a`}},
		{"unknown ship_to", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: mysql\n    region: a\n    dsn: x\n    ship_to: [a, z]\n", []string{"c.yaml:7:", `ship_to names "z"`}},
		{"missing dsn", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: mysql\n    region: a\n", []string{"c.yaml:3:", "has no dsn"}},
		{"bad store scheme", "regions:\n  - name: a\n    store: ftp://host/x\n", []string{"c.yaml:3:", `scheme "ftp" is not supported`, "allowed: file, s3"}},
		{"relative file store", "regions:\n  - name: a\n    store: file://relative/x\n", []string{"c.yaml:3:", "absolute path"}},
		{"store not a URL", "regions:\n  - name: a\n    store: \"s3://b/%zz\"\n", []string{"c.yaml:3:", "not a URL"}},
		{"s3 without bucket", "regions:\n  - name: a\n    store: s3:///prefix\n", []string{"c.yaml:3:", "needs a bucket"}},
		{"bad s3 endpoint", "regions:\n  - name: a\n    store: s3://b/p?endpoint=minio:9000\n", []string{"c.yaml:3:", "must be an http:// or https:// URL"}},
		{"missing store", "regions:\n  - name: a\n", []string{"c.yaml:2:", "has no store"}},
		{"missing env var", "regions:\n  - name: a\n    store: file:///${NOPE}/x\n", []string{"c.yaml:3:", "${NOPE}", "not set in the environment"}},
		{"bad listen", "drd:\n  listen: localhost\nregions: [{name: a, store: 'file:///a'}]\n", []string{"c.yaml:2:", "not host:port"}},
		{"bad size", "storage:\n  part_size: 16 megs\nregions: [{name: a, store: 'file:///a'}]\n", []string{"c.yaml:2:", `"16 megs" is not a size`}},
		{"bad duration", "storage:\n  sweep_after: tomorrow\nregions: [{name: a, store: 'file:///a'}]\n", []string{"c.yaml:2:", `"tomorrow" is not a duration`}},
		{"part too small", "storage:\n  part_size: 1MiB\nregions: [{name: a, store: 'file:///a'}]\n", []string{"c.yaml:2:", "outside 5MiB..5GiB"}},
		{"bad compression", "storage:\n  compression: lz4\n  compression_level: 30\nregions: [{name: a, store: 'file:///a'}]\n", []string{"c.yaml:2:", "c.yaml:3:", "allowed: zstd, none", "outside 1..22"}},
		{"bad recipient", "regions:\n  - name: a\n    store: file:///a\n    encryption:\n      recipients: [age1nope]\n", []string{"c.yaml:5:", "not an age public key"}},
		{"encryption without recipients", "regions:\n  - name: a\n    store: file:///a\n    encryption:\n      identity_file: /k\n", []string{"c.yaml:4:", "has no recipients"}},
		{"required not shipped", "regions: [{name: a, store: 'file:///a'}, {name: b, store: 'file:///b'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: x\n    ship_to: [a]\n    required_regions: [b]\n", []string{"c.yaml:8:", `required_regions names "b"`}},
		{"required_regions on mysql", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: mysql\n    region: a\n    dsn: 'u@tcp(h:3306)/'\n    required_regions: [a]\n", []string{"c.yaml:7:", "required_regions is for postgres, redis clusters", "remove it"}},
		{"bad cron", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: x\n    base_backup:\n      schedule: every day\n", []string{"c.yaml:8:", "not a cron expression"}},
		{"bad backup catch-up", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: x\n    base_backup: {schedule: '@daily', catch_up: never, jitter: 2h}\n", []string{"c.yaml:7:", `base_backup.catch_up "never"`, "jitter 2h0m0s is outside"}},
		{"bad flush interval", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - {name: c, engine: postgres, region: a, dsn: x, flush_interval: 10ms}\n", []string{"c.yaml:3:", "outside 100ms..1h"}},
		{"bad copy", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - {name: c, engine: postgres, region: a, dsn: x}\ncopies:\n  - {cluster: c, from: a, to: a, schedule: often, catch_up: never}\n  - {cluster: d, from: a, to: z}\n",
			[]string{"c.yaml:5:", "onto itself", `schedule "often"`, `catch_up "never"`, "c.yaml:6:", `cluster "d"`, `to "z"`, "has no schedule"}},
		{"bad image copy", "regions: [{name: a, store: 'file:///a'}]\nec2:\n  endpoints: {us-east-1: 'fcu.example'}\n  max_concurrent_copies: 500\nimages:\n  - {name: web, source_region: eu-west-1, to: [eu-west-1, us_east], schedule: '@daily', kms_key: k, filters: {ids: [snap-1]}}\n  - {name: web, source_region: x, to: [], schedule: '@daily'}\n",
			[]string{"c.yaml:3:", "must be an http:// or https:// URL", "c.yaml:4:", "max_concurrent_copies 500", "c.yaml:6:", "is the source region", `"us_east" is not a region`, "encrypted is not", `"snap-1" is not an id starting with ami-`,
				"c.yaml:7:", "already used", `source_region "x"`, "to is empty", "has no filters"}},
		{"bad snapshot copy", "regions: [{name: a, store: 'file:///a'}]\nvolume_snapshots:\n  - name: db\n    source_region: eu-west-1\n    to: [us-east-1]\n    schedule: '@daily'\n    keep: -1\n    create: {}\n",
			[]string{"c.yaml:7:", "keep -1", "c.yaml:8:", "needs volume_tags"}},
		{"outscale entry", "regions: [{name: a, store: 'file:///a'}]\noutscale:\n  oos: {eu-west-2: 'http://x'}\n  disk_image_format: vmdk\nvolume_snapshots:\n  - {name: db, provider: outscale, source_region: eu-west-2, to: [us-east-2], schedule: '@daily', encrypted: true, filters: {ids: [snap-1]}}\n  - {name: db2, provider: gcp, source_region: eu-west-2, to: [us-east-2], schedule: '@daily', filters: {ids: [snap-1]}}\n",
			[]string{"c.yaml:3:", "outscale.oos.eu-west-2", "must be an s3:// store URL", "c.yaml:4:", `disk_image_format "vmdk"`, "c.yaml:6:", "outscale.oos has no transfer bucket for Region us-east-2", "encrypted and kms_key are EC2 settings", "c.yaml:7:", `provider "gcp": one of ec2, outscale`}},
		{"failover", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: redis\n    region: a\n    dsn: redis://h:6379\n    failover:\n      public_ip: 203.0.113.300\n      provider: gcp\n      region: A\n",
			[]string{"c.yaml:8:", `failover.public_ip "203.0.113.300" is not an IP address`, "c.yaml:9:", `provider "gcp": outscale or ec2`, "c.yaml:10:", `failover.region "A"`, "c.yaml:7:", "failover.vms is empty"}},
		{"bad sync", "regions: [{name: a, store: 'file:///a'}]\nclusters:\n  - name: c\n    engine: postgres\n    region: a\n    dsn: x\n    sync: {mode: remote_durable, regions: [b], timeout: 1ms}\n  - name: d\n    engine: redis\n    region: a\n    dsn: redis://h:6379\n    sync:\n      mode: remote_durable\n  - name: e\n    engine: postgres\n    region: a\n    dsn: y\n    sync: {mode: sometimes}\n",
			[]string{"c.yaml:7:", `sync.regions names "b", which is not in its ship_to`, "sync.timeout 1ms is outside", "c.yaml:12:", "zero-RPO mode is for mysql, postgres clusters", "c.yaml:18:", `sync.mode "sometimes": off, remote_write or remote_durable`}},
		{"tags as a list", "regions: [{name: a, store: 'file:///a'}]\nimages:\n  - name: db\n    filters: {tags: [a]}\n", []string{"c.yaml:4:", "filters.tags must be a mapping"}},
		{"bad jobs region", "drd:\n  jobs_region: q\nregions: [{name: a, store: 'file:///a'}]\n", []string{"c.yaml:2:", `jobs_region "q"`}},
		{"several at once", "regions:\n  - name: a\n    store: ftp://x\nclusters:\n  - {name: c, engine: db2, region: q, dsn: x}\n", []string{"c.yaml:3:", "c.yaml:5:", "db2", `"q"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("c.yaml", []byte(tc.src), env(nil))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.src)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadMissingFileSaysWhatToDo(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnits(t *testing.T) {
	for in, want := range map[string]config.ByteSize{"16MiB": 16 << 20, "100MB": 100e6, "1GiB": 1 << 30, "1048576": 1 << 20, "1.5KiB": 1536} {
		if got, err := config.ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"14d": "14d", "36h": "36h0m0s", "90m": "1h30m0s"} {
		if got, err := config.ParseDuration(in); err != nil || got.String() != want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	if config.ByteSize(16<<20).String() != "16MiB" || config.ByteSize(100<<20).String() != "100MiB" || config.ByteSize(1000).String() != "1000" {
		t.Errorf("ByteSize strings: %s %s %s", config.ByteSize(16<<20), config.ByteSize(100<<20), config.ByteSize(1000))
	}
}

func TestResolve(t *testing.T) {
	t.Setenv(config.EnvFile, "")
	if got := config.Resolve(""); got != config.DefaultFile {
		t.Errorf("Resolve() = %q, want %q", got, config.DefaultFile)
	}
	t.Setenv(config.EnvFile, "/etc/drkit.yaml")
	if got := config.Resolve(""); got != "/etc/drkit.yaml" {
		t.Errorf("Resolve() with env = %q", got)
	}
	if got := config.Resolve("x.yaml"); got != "x.yaml" {
		t.Errorf("Resolve(flag) = %q", got)
	}
}

// TestRedactedGolden renders a config full of secrets; the golden file must hold none.
func TestRedactedGolden(t *testing.T) {
	src, err := os.ReadFile("testdata/redact.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("testdata/redact.yaml", src, env(map[string]string{"PW": "hunter2"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got, err := cfg.Redacted().YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", "pa55", "t0ken", "my@pw", "kv-secret", "quoted secret", "drill-pw", "oos-secret"} {
		if strings.Contains(string(got), secret) {
			t.Errorf("redacted output still holds %q", secret)
		}
	}
	if cfg.Clusters[0].DSN != "postgres://repl:hunter2@10.0.0.5:5432/postgres" {
		t.Errorf("Redacted changed the original: %q", cfg.Clusters[0].DSN)
	}
	golden := "testdata/redact.golden"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/config -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("redacted config differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
}

// TestExampleConfigIsValid keeps the README's example file loadable.
func TestExampleConfigIsValid(t *testing.T) {
	t.Setenv("ORDERS_PGPASSWORD", "x")
	t.Setenv("SESSIONS_REDIS_PASSWORD", "x")
	t.Setenv("CATALOG_MONGO_PASSWORD", "x")
	cfg, err := config.Load("../../drkit.example.yaml")
	if err != nil {
		t.Fatalf("drkit.example.yaml: %v", err)
	}
	if len(cfg.Regions) != 2 || len(cfg.Clusters) != 3 {
		t.Fatalf("example has %d regions and %d clusters, want 2 and 3", len(cfg.Regions), len(cfg.Clusters))
	}
}

func TestParseMachineCopies(t *testing.T) {
	src := `regions: [{name: a, store: 'file:///a'}]
ec2:
  endpoints: {eu-west-2: 'https://fcu.eu-west-2.outscale.com'}
images:
  - name: web
    source_region: eu-west-1
    filters: {tags: {role: web, env: prod}}
    to: [us-east-1, eu-west-2]
    schedule: '@daily'
    keep: 3
    keep_within: 30d
    encrypted: true
    kms_key: alias/dr
volume_snapshots:
  - name: db
    source_region: eu-west-1
    create: {volume_tags: {backup: "true"}}
    to: [us-east-1]
    schedule: '0 * * * *'
    catch_up: skip
`
	cfg, err := config.Parse("c.yaml", []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	im := cfg.Images[0]
	if im.Filters.Tags["role"] != "web" || im.Filters.Tags["env"] != "prod" || len(im.To) != 2 || im.Keep != 3 ||
		im.KeepWithin != config.Duration(30*24*time.Hour) || !im.Encrypted || im.KMSKey != "alias/dr" || im.CatchUp != "once" {
		t.Errorf("image entry decoded as %+v", im)
	}
	sc := cfg.VolumeSnapshots[0]
	if sc.Create == nil || sc.Create.VolumeTags["backup"] != "true" || sc.CatchUp != "skip" || sc.Schedule != "0 * * * *" {
		t.Errorf("snapshot entry decoded as %+v", sc)
	}
	if cfg.EC2.MaxConcurrentCopies != config.DefaultMaxConcurrentCopies || cfg.EC2.CopyTimeout != config.DefaultCopyTimeout ||
		cfg.EC2.Endpoints["eu-west-2"] != "https://fcu.eu-west-2.outscale.com" {
		t.Errorf("ec2 decoded as %+v", cfg.EC2)
	}
}

// TestEngineRulesFromRegistry pins that config asks each registered engine
// for its DSN check and defaults (a new engine touches no file in config),
// and that the built-in engines' rules still apply.
func TestEngineRulesFromRegistry(t *testing.T) {
	config.RegisterEngine("testdb", config.EngineRules{
		CheckDSN: func(dsn string) error {
			if !strings.HasPrefix(dsn, "testdb:") {
				return errors.New("is not a testdb DSN (testdb:host)")
			}
			return nil
		},
		Defaults: func(cl *config.Cluster) { cl.Slot = "from_testdb" },
	})
	const head = "regions: [{name: a, store: 'file:///a'}]\nclusters:\n"
	_, err := config.Parse("c.yaml", []byte(head+"  - {name: c, engine: testdb, region: a, dsn: 'postgres://h/db'}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:3: clusters[0].dsn: is not a testdb DSN") {
		t.Errorf("testdb cluster with a foreign dsn: %v; want the engine's own DSN error with its line", err)
	}
	cfg, err := config.Parse("c.yaml", []byte(head+"  - {name: c, engine: testdb, region: a, dsn: 'testdb:h'}\n"), env(nil))
	if err != nil || cfg.Clusters[0].Slot != "from_testdb" {
		t.Fatalf("testdb cluster: %v; slot %q, want the engine's default", err, cfg.Clusters[0].Slot)
	}
	// An engine that compares no replicas refuses sync_check, naming the ones that do.
	_, err = config.Parse("c.yaml", []byte(head+"  - name: c\n    engine: testdb\n    region: a\n    dsn: 'testdb:h'\n    sync_check: {schedule: '@daily'}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:7: clusters[0].sync_check: checksum comparisons are for mongodb, mysql, postgres, redis clusters, not testdb") {
		t.Errorf("sync_check on testdb: %v; want the refusal naming the engines that compare", err)
	}
	if _, err := config.Parse("c.yaml", []byte(head+"  - name: c\n    engine: mongodb\n    region: a\n    dsn: 'mongodb://h/'\n    sync_check: {schedule: '@daily'}\n"), env(nil)); err != nil {
		t.Errorf("sync_check on mongodb: %v", err)
	}
	_, err = config.Parse("c.yaml", []byte(head+"  - name: c\n    engine: testdb\n    region: a\n    dsn: 'testdb:h'\n    drill: {schedule: '@daily'}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:7: clusters[0].drill: restore drills are for mongodb, mysql, postgres, redis clusters, not testdb") {
		t.Errorf("drill on testdb: %v; want the refusal naming the engines that drill", err)
	}

	_, err = config.Parse("c.yaml", []byte(head+"  - {name: c, engine: mysql, region: a, dsn: 'postgres://h/db'}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "dsn: is not a MySQL DSN") {
		t.Errorf("mysql cluster with a URL dsn: %v; want the MySQL DSN error", err)
	}
	cfg, err = config.Parse("c.yaml", []byte(head+"  - {name: my-db, engine: mysql, region: a, dsn: 'u:p@tcp(h:3306)/'}\n  - {name: pg.db, engine: postgres, region: a, dsn: 'postgres://h/db'}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	my, pg := cfg.Clusters[0], cfg.Clusters[1]
	if my.ServerID < 1<<31 || my.Monitor.Heartbeat.Table != "drkit.heartbeat" || my.Slot != "" {
		t.Errorf("mysql defaults: server_id %d, heartbeat %q, slot %q", my.ServerID, my.Monitor.Heartbeat.Table, my.Slot)
	}
	if pg.Slot != "drkit_pg_db" || pg.Monitor.Heartbeat.Table != "drkit_heartbeat" || pg.ServerID != 0 {
		t.Errorf("postgres defaults: slot %q, heartbeat %q, server_id %d", pg.Slot, pg.Monitor.Heartbeat.Table, pg.ServerID)
	}
	if h := config.DSNHost("u:p@tcp(db.internal:3306)/"); h != "db.internal" {
		t.Errorf("DSNHost of a MySQL DSN = %q, want db.internal (the mysql engine reads its own form)", h)
	}
	if !my.TrustsHost("u:p@tcp(h:3306)/?tls=true") || my.TrustsHost("u:p@tcp(evil:3306)/") {
		t.Error("TrustsHost through the mysql engine's DSN form")
	}
}
