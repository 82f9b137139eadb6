package outscale

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// An exported image's manifest (CreateImageExportTask writes it beside the
// image's snapshots; CreateImage reads it from its pre-signed URL): JSON
// whose Image.Snapshots each name their object (Filename, the key in the
// bucket) and a pre-signed URL to it. Read from a store, it is untrusted:
// rewrite keeps every field as it is, and only replaces the URLs of
// snapshots whose Filename is an object the transfer copied.

// maxManifest bounds a manifest read from a store.
const maxManifest = 1 << 20

// manifestSnapshot is what the transfer needs of one snapshot entry.
type manifestSnapshot struct {
	Filename     string `json:"Filename"`
	PreSignedURL string `json:"PreSignedUrl"`
}

// rewriteManifest returns the manifest with each snapshot's PreSignedUrl
// replaced by urlFor(Filename). Every snapshot must have a Filename for
// which urlFor answers: an entry it cannot place is an error, never left
// pointing at the source Region.
func rewriteManifest(b []byte, urlFor func(filename string) (string, error)) ([]byte, error) {
	if len(b) > maxManifest {
		return nil, fmt.Errorf("image manifest: %d bytes, more than the %d a manifest may hold", len(b), maxManifest)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	var img map[string]json.RawMessage
	if err := json.Unmarshal(top["Image"], &img); err != nil || img == nil {
		return nil, errors.New("image manifest: no Image object")
	}
	var snaps []map[string]json.RawMessage
	if err := json.Unmarshal(img["Snapshots"], &snaps); err != nil || len(snaps) == 0 {
		return nil, errors.New("image manifest: Image.Snapshots lists no snapshot")
	}
	// A reader that matches keys without case (Go's encoding/json does)
	// could take a second "image", "snapshots" or "presignedurl" for the
	// one rewritten here, and import from wherever it points.
	if err := oneSpelling(top, "Image"); err != nil {
		return nil, err
	}
	if err := oneSpelling(img, "Snapshots"); err != nil {
		return nil, err
	}
	for _, s := range snaps {
		if err := oneSpelling(s, "PreSignedUrl", "Filename"); err != nil {
			return nil, err
		}
	}
	for i, s := range snaps {
		var name string
		if err := json.Unmarshal(s["Filename"], &name); err != nil || name == "" {
			return nil, fmt.Errorf("image manifest: snapshot %d has no Filename", i)
		}
		u, err := urlFor(name)
		if err != nil {
			return nil, fmt.Errorf("image manifest: snapshot %d (%s): %w", i, name, err)
		}
		raw, _ := json.Marshal(u)
		s["PreSignedUrl"] = raw
	}
	var err error
	if img["Snapshots"], err = json.Marshal(snaps); err != nil {
		return nil, err
	}
	if top["Image"], err = json.Marshal(img); err != nil {
		return nil, err
	}
	return json.MarshalIndent(top, "", "  ")
}

// oneSpelling refuses an object holding another spelling (case) of one of
// keys.
func oneSpelling(m map[string]json.RawMessage, keys ...string) error {
	for k := range m {
		for _, want := range keys {
			if k != want && strings.EqualFold(k, want) {
				return fmt.Errorf("image manifest: key %q beside %q: refused (a reader could take either)", k, want)
			}
		}
	}
	return nil
}

// manifestSnapshots lists the snapshot entries of a manifest.
func manifestSnapshots(b []byte) ([]manifestSnapshot, error) {
	var m struct {
		Image struct {
			Snapshots []manifestSnapshot `json:"Snapshots"`
		} `json:"Image"`
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("image manifest: %d bytes, more than the %d a manifest may hold", len(b), maxManifest)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	return m.Image.Snapshots, nil
}

// keyIn maps a manifest Filename (a key in the bucket) to a key of the store
// rooted at storePrefix, refusing one outside exportPrefix (a store key).
func keyIn(filename, storePrefix, exportPrefix string) (string, error) {
	key, ok := strings.CutPrefix(filename, storePrefix)
	if !ok || !strings.HasPrefix(key, exportPrefix) || strings.Contains(key, "..") {
		return "", fmt.Errorf("%q is not an object of this export (under %s%s)", filename, storePrefix, exportPrefix)
	}
	return key, nil
}
