package mysql_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/storetest"
)

// TestPartsAreCheckedFrames: in a compressing region each part is a zstd
// frame drkit made, with its content checksum, hashed as stored; a region
// that does not compress (here also encrypting) holds the same text as it
// is. Both restore the same rows.
func TestPartsAreCheckedFrames(t *testing.T) {
	src, fromEU, fromUS := &testenv.MariaDB{}, &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, fromEU, fromUS)
	e := newEnv(t, src)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	us := e.regions[1].Pipeline
	us.Level, us.Recipients, us.Identities = 0, []age.Recipient{id.Recipient()}, []age.Identity{id}
	seed(t, e.db)
	testenv.Exec(t, e.db, "CREATE DATABASE seq", "INSERT INTO shop.orders (note, data) SELECT CONCAT('row ', seq), REPEAT('x', seq % 300) FROM seq.seq_1_to_20000")
	m, err := mysnap.Backup(context.Background(), mysnap.BackupOptions{Cluster: "shop", DSN: src.DSN(""), Regions: e.regions, Log: testenv.Logger(t), RangeRows: 5000, PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	mans := make([]mysnap.Manifest, 2)
	for i, r := range e.regions {
		list, _, err := mysnap.ListBackups(context.Background(), r.Pipeline, "shop")
		if err != nil || len(list) != 1 {
			t.Fatalf("region %s: %d backups (%v), want 1", r.Name, len(list), err)
		}
		mans[i] = list[0]
	}
	if mans[0].FormatVersion != 2 || mans[0].PartCompression != "zstd" || mans[1].PartCompression != "none" {
		t.Fatalf("format %d, part compression eu %q us %q; want 2, zstd, none", mans[0].FormatVersion, mans[0].PartCompression, mans[1].PartCompression)
	}
	var text int64
	frames := 0
	for ti, tp := range mans[0].Tables {
		var tableText int64
		for pi, obj := range tp.Parts {
			frame := storetest.ReadObject(t, e.regions[0].Pipeline, obj)
			if sum := sha256.Sum256(frame); obj.Compression != "none" || obj.SHA256 != hex.EncodeToString(sum[:]) || obj.PlainSize != int64(len(frame)) {
				t.Fatalf("eu %s: recorded %+v; want compression none and the frame's SHA-256 and size (%d bytes)", obj.Key, obj, len(frame))
			}
			var h zstd.Header
			if err := h.Decode(frame); err != nil || !h.HasCheckSum {
				t.Fatalf("eu %s: frame header %+v (%v); want a zstd frame with its content checksum", obj.Key, h, err)
			}
			dec, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := dec.DecodeAll(frame, nil)
			dec.Close()
			if err != nil {
				t.Fatalf("eu %s: decode: %v", obj.Key, err)
			}
			usObj := mans[1].Tables[ti].Parts[pi]
			if got := storetest.ReadObject(t, us, usObj); !bytes.Equal(got, plain) || usObj.Encryption != "age" {
				t.Fatalf("part %s: us holds %d bytes (%s), eu's frame decodes to %d; want the same text, encrypted", obj.Key, len(got), usObj.Encryption, len(plain))
			}
			tableText += int64(len(plain))
			frames++
		}
		if tableText != tp.PlainSize || tp.PlainSize != mans[1].Tables[ti].PlainSize {
			t.Fatalf("table %s: parts hold %d bytes of text, manifests say %d and %d", tp.Name, tableText, tp.PlainSize, mans[1].Tables[ti].PlainSize)
		}
		text += tableText
	}
	if frames < 4 || mans[0].PlainSize != mans[0].Schema.PlainSize+text || m.PlainSize != mans[0].PlainSize {
		t.Fatalf("%d parts; manifest plain_size %d, want schema %d + text %d", frames, mans[0].PlainSize, mans[0].Schema.PlainSize, text)
	}
	want := fingerprint(t, e.db, "shop.orders")
	for i, target := range []*testenv.MariaDB{fromEU, fromUS} {
		if err := restoreSnapshot(t, e.regions[i], target); err != nil {
			t.Fatalf("restore from %s: %v", e.regions[i].Name, err)
		}
		if got := fingerprint(t, target.Open(t, ""), "shop.orders"); got != want {
			t.Fatalf("restored from %s: orders checksum %s, source %s", e.regions[i].Name, got, want)
		}
	}
}

// TestFormatOneStillRestores: a snapshot written before format 2 (parts
// compressed by the region's pipeline, hashed as text) restores.
func TestFormatOneStillRestores(t *testing.T) {
	src, dst := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	seed(t, e.db)
	e.regions = e.regions[:1]
	m, err := mysnap.Backup(context.Background(), mysnap.BackupOptions{Cluster: "shop", DSN: src.DSN(""), Regions: e.regions, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p := e.regions[0].Pipeline
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for ti, tp := range m.Tables {
		for pi, obj := range tp.Parts {
			plain, err := dec.DecodeAll(storetest.ReadObject(t, p, obj), nil)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(plain)
			old := p.Described(hex.EncodeToString(sum[:]), int64(len(plain)))
			old.Key = obj.Key
			if m.Tables[ti].Parts[pi], err = p.PutBytes(context.Background(), old, plain); err != nil {
				t.Fatal(err)
			}
		}
		m.Tables[ti].PlainSize = 0
	}
	m.FormatVersion, m.PartCompression = 1, ""
	if err := snapshots.WriteManifest(context.Background(), e.regions[0].Store, "shop", m.ID, m); err != nil {
		t.Fatal(err)
	}
	if m.Tables[0].Parts[0].Compression != "zstd" {
		t.Fatalf("rewritten part %+v, want one the pipeline compressed", m.Tables[0].Parts[0])
	}
	if err := restoreSnapshot(t, e.regions[0], dst); err != nil {
		t.Fatal(err)
	}
	if got, want := fingerprint(t, dst.Open(t, ""), "shop.orders"), fingerprint(t, e.db, "shop.orders"); got != want {
		t.Fatalf("restored orders checksum %s, source %s", got, want)
	}
}

// restoreSnapshot loads the newest snapshot of region into target, without
// replaying any binlog.
func restoreSnapshot(t *testing.T, r *storage.Region, target *testenv.MariaDB) error {
	_, err := mysnap.Restore(context.Background(), mysnap.RestoreOptions{Cluster: "shop", Region: r, TargetDSN: target.DSN(""), NoReplay: true, Log: testenv.Logger(t)})
	return err
}
