package mysql

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	binlog "github.com/drkit/drkit/binlog/mysql"

	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// FormatVersion is the manifest format this code writes. Format 2 added
// PartCompression; format 1 (parts compressed by the region's pipeline, their
// SHA-256 that of the text) is still read.
const FormatVersion = 2

// Manifest describes one snapshot in one region.
type Manifest struct {
	FormatVersion int    `json:"format_version"`
	Engine        string `json:"engine"`
	Flavor        string `json:"flavor"`
	Cluster       string `json:"cluster"`
	ID            string `json:"id"`
	ServerVersion string `json:"server_version"`
	// GTIDPos is the server's gtid_binlog_pos at the snapshot: the snapshot holds
	// exactly the transactions up to it.
	GTIDPos string `json:"gtid_pos"`
	// SnapshotTime is the server's clock at the snapshot point.
	SnapshotTime time.Time `json:"snapshot_time"`
	StartTime    time.Time `json:"start_time"`
	StopTime     time.Time `json:"stop_time"`
	// PlainSize is the schema's and the parts' text, uncompressed.
	PlainSize  int64 `json:"plain_size"`
	StoredSize int64 `json:"stored_size"`
	// PartCompression "zstd" says each part object holds a zstd frame of
	// the LOAD DATA text with its content checksum, compressed by drkit: the
	// object's plain_size and sha256 are the frame's. "none" (a region that
	// does not compress) and "" (format 1) say it holds the text.
	PartCompression string         `json:"part_compression,omitempty"`
	Rows            int64          `json:"rows"`
	Schema          storage.Object `json:"schema"`
	Tables          []TableParts   `json:"tables"`
	// Fence is the lease generation of the drd that took the backup
	// (drd.ha), 0 without a lease: the fencing token of what it writes.
	Fence uint64 `json:"fence,omitempty"`
}

// TableParts is one table's data objects.
type TableParts struct {
	DB      string   `json:"db"`
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	Rows    int64    `json:"rows"`
	// PlainSize is the parts' text, uncompressed (format 2).
	PlainSize int64            `json:"plain_size,omitempty"`
	Parts     []storage.Object `json:"parts"`
}

// Column is a column whose value the parts hold, in order.
type Column struct {
	Name string `json:"name"`
	// Bit columns travel as their integer value.
	Bit bool `json:"bit,omitempty"`
}

var baseKey = snapshots.BaseKey

// Objects are the snapshot's stored objects: its schema, then every part.
func (m Manifest) Objects() []storage.Object {
	objs := []storage.Object{m.Schema}
	for _, t := range m.Tables {
		objs = append(objs, t.Parts...)
	}
	return objs
}

// BackupID is the snapshot's id (snapshots.Identified).
func (m Manifest) BackupID() string { return m.ID }

// ListBackups returns the complete snapshots (those with a manifest) of cluster
// in a region, oldest first, and the manifests it could not read or check.
//
// Oldest first means by GTID position, not by the clock of the host that took
// a snapshot: positions only grow, so the sum of a position's sequence
// numbers orders snapshots of one history whatever the domains.
func ListBackups(ctx context.Context, p *storage.Pipeline, cluster string) ([]Manifest, []snapshots.Damaged, error) {
	out, damaged, err := snapshots.ListManifests(ctx, p, cluster, checkManifest)
	slices.SortStableFunc(out, func(a, b Manifest) int {
		if c := cmp.Compare(seqSum(a.GTIDPos), seqSum(b.GTIDPos)); c != 0 {
			return c
		}
		return a.SnapshotTime.Compare(b.SnapshotTime)
	})
	return out, damaged, err
}

// seqSum is the sum of a checked position's sequence numbers.
func seqSum(pos string) uint64 {
	p, _ := binlog.ParsePos(pos)
	var n uint64
	for _, g := range p {
		n += g.Seq
	}
	return n
}

// maxPartSize bounds one part: a restore reads parts whole into LOAD DATA,
// and a manifest is untrusted input.
const maxPartSize = 1 << 30

func checkManifest(m Manifest) error {
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion || m.Engine != "mysql" {
		return fmt.Errorf("a %s manifest of format %d; this drkit reads mysql formats 1 to %d", m.Engine, m.FormatVersion, FormatVersion)
	}
	if m.ID == "" {
		return fmt.Errorf("no id")
	}
	if _, err := binlog.ParsePos(m.GTIDPos); err != nil {
		return fmt.Errorf("GTID position %q: %w", m.GTIDPos, err)
	}
	if m.PlainSize < 0 || m.StoredSize < 0 || m.Rows < 0 {
		return fmt.Errorf("negative size or rows (plain %d, stored %d, rows %d)", m.PlainSize, m.StoredSize, m.Rows)
	}
	switch m.PartCompression {
	case "", "none", "zstd":
	default:
		return fmt.Errorf("part compression %q; this drkit reads zstd and none", m.PartCompression)
	}
	prefix := baseKey(m.Cluster, m.ID)
	for _, t := range m.Tables {
		if t.PlainSize < 0 || t.Rows < 0 {
			return fmt.Errorf("table %s.%s: negative size or rows", t.DB, t.Name)
		}
	}
	for _, obj := range m.Objects() {
		if !strings.HasPrefix(obj.Key, prefix) || strings.Contains(obj.Key, "..") {
			return fmt.Errorf("key %q is not in the snapshot's folder %s", obj.Key, prefix)
		}
		if obj.PlainSize < -1 || obj.PlainSize > maxPartSize || obj.Size < 0 {
			return fmt.Errorf("%s: size %d (plain %d) is out of range", obj.Key, obj.Size, obj.PlainSize)
		}
	}
	return nil
}

func writeManifest(ctx context.Context, st storage.Store, m Manifest) error {
	return snapshots.WriteManifest(ctx, st, m.Cluster, m.ID, m)
}

// Schema is schema.json: everything but the rows, in the order a restore
// creates it.
type Schema struct {
	Databases []Object `json:"databases"`
	Tables    []Object `json:"tables"`
	// Post-data objects: created after the rows are loaded (triggers must not
	// fire on loaded rows; views and routines may refer to any table).
	Routines []Object `json:"routines"`
	Views    []Object `json:"views"`
	Triggers []Object `json:"triggers"`
	Events   []Object `json:"events"`
	Users    []User   `json:"users"`
}

// Object is one CREATE statement and the session it must run in.
type Object struct {
	DB      string `json:"db,omitempty"`
	Name    string `json:"name"`
	SQLMode string `json:"sql_mode,omitempty"`
	Create  string `json:"create"`
}

// User is an account: its CREATE USER and its GRANTs.
type User struct {
	Name   string   `json:"name"` // 'user'@'host'
	Create string   `json:"create"`
	Grants []string `json:"grants"`
}
