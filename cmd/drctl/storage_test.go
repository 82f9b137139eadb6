package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage/storetest"
)

func TestMain(m *testing.M) {
	testenv.UseS3Credentials()
	os.Exit(m.Run())
}

// storageConfig writes a config with a file region, a MinIO region and an
// encrypted file region, with 5 MiB parts so that 12 MiB goes multipart.
func storageConfig(t *testing.T) (cfgPath string, identity *age.X25519Identity) {
	t.Helper()
	minio := testenv.StartMinIO(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "age.key")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`drd:
  state_dir: %s/state
storage:
  part_size: 5MiB
  multipart_threshold: 6MiB
regions:
  - name: local
    store: file://%s/local
  - name: minio
    store: %q
  - name: sealed
    store: file://%s/sealed
    encryption:
      recipients: [%s]
      identity_file: %s
`, dir, dir, minio.StoreURL("drctl"), dir, id.Recipient(), keyFile)
	return writeFile(t, cfg), id
}

func TestStorageCommands(t *testing.T) {
	cfg, _ := storageConfig(t)
	dir := t.TempDir()
	big := storetest.Data(1, 12<<20+1)
	bigPath := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(bigPath, big, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, region := range []string{"local", "minio"} {
		t.Run(region, func(t *testing.T) {
			ok := func(args ...string) string {
				t.Helper()
				code, out, errOut := drctl(t, append(args, "--config", cfg, "--region", region)...)
				if code != exitOK {
					t.Fatalf("drctl %v: exit %d: %s", args, code, errOut)
				}
				return out
			}
			ok("storage", "put", "backups/big.bin", bigPath)
			out := ok("storage", "ls", "backups/", "--json")
			var listed []struct {
				Key  string
				Size int64
			}
			if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 1 || listed[0].Size != int64(len(big)) {
				t.Fatalf("ls --json = %s (%v)", out, err)
			}
			got := filepath.Join(dir, region+".out")
			ok("storage", "get", "backups/big.bin", got)
			if b, _ := os.ReadFile(got); !bytes.Equal(b, big) {
				t.Fatal("get returned other bytes than put stored")
			}
			if code, _, errOut := drctl(t, "storage", "get", "backups/nope", got, "--config", cfg, "--region", region); code != exitNotFound {
				t.Fatalf("get of a missing key: exit %d (%s), want %d", code, errOut, exitNotFound)
			}
			ok("storage", "rm", "backups/big.bin", "backups/never")
			if out := ok("storage", "ls", "backups/"); strings.TrimSpace(out) != "" {
				t.Fatalf("ls after rm = %q", out)
			}
			ok("storage", "sweep", "--dry-run")
		})
	}
}

func TestStoragePipelineRoundTrip(t *testing.T) {
	cfg, _ := storageConfig(t)
	dir := t.TempDir()
	data := bytes.Repeat([]byte("compressible line of WAL\n"), 100000)
	src := filepath.Join(dir, "in")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, rec, errOut := drctl(t, "storage", "put", "--pipeline", "x/obj", src, "--config", cfg, "--region", "sealed")
	if code != exitOK {
		t.Fatalf("put --pipeline: exit %d: %s", code, errOut)
	}
	var obj struct {
		Size       int64  `json:"size"`
		PlainSize  int64  `json:"plain_size"`
		Encryption string `json:"encryption"`
	}
	if err := json.Unmarshal([]byte(rec), &obj); err != nil || obj.Encryption != "age" {
		t.Fatalf("record = %s (%v)", rec, err)
	}
	recPath := filepath.Join(dir, "rec.json")
	if err := os.WriteFile(recPath, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	// Raw bytes are ciphertext; the pipeline gives back the plaintext.
	if code, out, _ := drctl(t, "storage", "get", "x/obj", "-", "--config", cfg, "--region", "sealed"); code != exitOK || bytes.Contains([]byte(out), []byte("compressible")) {
		t.Fatalf("raw get: exit %d, plaintext visible: %v", code, bytes.Contains([]byte(out), []byte("compressible")))
	}
	code, out, errOut := drctl(t, "storage", "get", "--pipeline", "--record", recPath, "x/obj", "-", "--config", cfg, "--region", "sealed")
	if code != exitOK || out != string(data) {
		t.Fatalf("get --pipeline: exit %d (%s), %d bytes of %d", code, errOut, len(out), len(data))
	}
}

func TestStorageBadInput(t *testing.T) {
	cfg, _ := storageConfig(t)
	cases := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"no region", []string{"storage", "ls"}, exitUsage, `"region" not set`},
		{"unknown region", []string{"storage", "ls", "--region", "mars"}, exitUsage, `region "mars" is not configured`},
		{"missing file", []string{"storage", "put", "k", "/nonexistent", "--region", "local"}, exitUsage, "/nonexistent"},
		{"bad key", []string{"storage", "put", "../k", "/dev/null", "--region", "local"}, exitFailure, "invalid object key"},
		{"pipeline without record", []string{"storage", "get", "--pipeline", "k", "-", "--region", "sealed"}, exitUsage, "--record"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := drctl(t, append(tc.args, "--config", cfg)...)
			if code != tc.code || !strings.Contains(errOut, tc.say) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.say)
			}
		})
	}
	t.Run("wrong credentials", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
		code, _, errOut := drctl(t, "storage", "ls", "--config", cfg, "--region", "minio")
		if code != exitFailure || !strings.Contains(errOut, "credentials were refused") {
			t.Fatalf("exit %d, stderr %q; want 1 and the credentials hint", code, errOut)
		}
		if strings.Contains(errOut, "wrong-secret") {
			t.Fatal("the secret key appears in the error")
		}
	})
}
