package outscale

import (
	"encoding/json"
	"testing"
)

const sampleManifest = `{"Version": 1, "Image": {"Name": "web", "Architecture": "x86_64",
 "Snapshots": [{"Ordering": 1, "Filename": "tmp/job/ami-1/snap-1.qcow2.gz", "PreSignedUrl": "https://oos.eu-west-2.outscale.com/b/x", "Size": 10737418240, "Device": "/dev/sda1"}]}}`

func TestRewriteManifestKeepsFieldsAndReplacesURLs(t *testing.T) {
	out, err := rewriteManifest([]byte(sampleManifest), func(name string) (string, error) { return "https://dest/" + name, nil })
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Version int
		Image   struct {
			Name, Architecture string
			Snapshots          []map[string]any
		}
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	s := m.Image.Snapshots[0]
	if m.Version != 1 || m.Image.Name != "web" || m.Image.Architecture != "x86_64" || s["PreSignedUrl"] != "https://dest/tmp/job/ami-1/snap-1.qcow2.gz" ||
		s["Device"] != "/dev/sda1" || s["Size"] != float64(10737418240) {
		t.Fatalf("rewritten manifest lost or kept the wrong fields:\n%s", out)
	}
}

// A second spelling of a key a reader might match without case is refused:
// it could point the import at another host.
func TestRewriteManifestRefusesOtherSpellings(t *testing.T) {
	for _, m := range []string{
		`{"Image": {"Snapshots": [{"Filename": "a", "preSignedUrl": "https://elsewhere/x"}]}}`,
		`{"Image": {"Snapshots": [{"Filename": "a"}], "snapshots": [{"Filename": "b", "PreSignedUrl": "https://elsewhere/x"}]}}`,
		`{"Image": {"Snapshots": [{"Filename": "a"}]}, "image": {"Snapshots": [{"PreSignedUrl": "https://elsewhere/x"}]}}`,
	} {
		if out, err := rewriteManifest([]byte(m), func(string) (string, error) { return "u", nil }); err == nil {
			t.Errorf("rewrote %s into %s", m, out)
		}
	}
}

func TestKeyInRefusesOtherObjects(t *testing.T) {
	for _, name := range []string{"other/ami-1/snap.gz", "tmp/job/ami-2/snap.gz", "tmp/job/ami-1/../../x"} {
		if _, err := keyIn(name, "tmp/", "job/ami-1/"); err == nil {
			t.Errorf("keyIn(%q) accepted an object outside the export", name)
		}
	}
	if k, err := keyIn("tmp/job/ami-1/snap.gz", "tmp/", "job/ami-1/"); err != nil || k != "job/ami-1/snap.gz" {
		t.Errorf("keyIn: %q, %v", k, err)
	}
}

// FuzzManifest: a manifest read from a store never panics the decoder or
// the rewrite, and a rewrite that succeeds points every snapshot at the
// URL it was given.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(sampleManifest))
	f.Add([]byte(`{"Image": {"Snapshots": []}}`))
	f.Add([]byte(`{"Image": {"Snapshots": [{"Filename": 7}]}}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = manifestSnapshots(b)
		out, err := rewriteManifest(b, func(name string) (string, error) { return "u:" + name, nil })
		if err != nil {
			return
		}
		snaps, err := manifestSnapshots(out)
		if err != nil || len(snaps) == 0 {
			t.Fatalf("a rewritten manifest does not decode: %v\n%s", err, out)
		}
		for _, s := range snaps {
			if s.PreSignedURL != "u:"+s.Filename || s.Filename == "" {
				t.Fatalf("snapshot %q points at %q", s.Filename, s.PreSignedURL)
			}
		}
	})
}
