package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// DefaultListen is where drd serves /healthz, /readyz, /metrics and its API unless
// the config says otherwise. Loopback by default: the API can start backups.
const DefaultListen = "127.0.0.1:9580"

// DefaultFile is the config path used when neither --config nor $DRKIT_CONFIG is set.
const DefaultFile = "drkit.yaml"

// EnvFile names the environment variable that points at the config file.
const EnvFile = "DRKIT_CONFIG"

// Engines returns the database engines a cluster may name.
func Engines() []string { return []string{"postgres", "mysql", "redis", "mongodb"} }

// StoreSchemes returns the store URL schemes the storage adapters register. The
// storage package checks its registry again when a store is opened; this list lets
// `drctl config check` catch a typo without importing every adapter.
func StoreSchemes() []string { return []string{"file", "s3"} }

// Config is the whole configuration file.
type Config struct {
	Drd      Drd       `yaml:"drd"`
	Regions  []Region  `yaml:"regions"`
	Clusters []Cluster `yaml:"clusters"`

	// Path is the file the config was read from ("" when parsed from memory).
	Path string `yaml:"-"`
	// lines maps a field path such as "clusters[1].engine" to its line in Path.
	lines map[string]int
}

// Drd configures the daemon itself.
type Drd struct {
	// Listen is the host:port of the HTTP listener.
	Listen string `yaml:"listen"`
}

// Region is one object store that holds a self-sufficient copy of the catalog.
type Region struct {
	Name  string `yaml:"name"`
	Store string `yaml:"store"`
}

// Cluster is one database whose logs and backups drd ships.
type Cluster struct {
	Name   string `yaml:"name"`
	Engine string `yaml:"engine"`
	// Region is where the primary runs.
	Region string `yaml:"region"`
	DSN    string `yaml:"dsn"`
	// ShipTo lists the regions that receive logs and backups; empty means every region.
	ShipTo []string `yaml:"ship_to"`
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

func (c *Config) applyDefaults() {
	if c.Drd.Listen == "" {
		c.Drd.Listen = DefaultListen
	}
	for i := range c.Clusters {
		if len(c.Clusters[i].ShipTo) == 0 {
			for _, r := range c.Regions {
				c.Clusters[i].ShipTo = append(c.Clusters[i].ShipTo, r.Name)
			}
		}
	}
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

// Cluster returns the cluster called name.
func (c *Config) Cluster(name string) (Cluster, bool) {
	for _, cl := range c.Clusters {
		if cl.Name == name {
			return cl, true
		}
	}
	return Cluster{}, false
}
