package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/bucket"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/vulnerability"
	bolt "go.etcd.io/bbolt"
)

// Registry is a real OCI registry, CNCF distribution's (from the tool cache), serving plain HTTP
// on loopback: go-containerregistry, cosign and Trivy all talk HTTP to a 127.0.0.1 registry.
type Registry struct {
	Host string // 127.0.0.1:port, the images' registry part
}

// StartRegistry starts a registry with its storage in a test folder, stopped when the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	bin := binary(t, "registry")
	port, err := freePort(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port)}
	config := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %q}, delete: {enabled: true}}\nhttp: {addr: %q}\n",
		filepath.Join(dir, "data"), r.Host)
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := startProc("registry", filepath.Join(dir, "registry.log"), exec.Command(bin, "serve", config), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	if err := p.waitReady(context.Background(), 30*time.Second, 100*time.Millisecond, httpOK(http.DefaultClient, "http://"+r.Host+"/v2/")); err != nil {
		t.Fatal(err)
	}
	return r
}

// binary is Binary, failing the test when the tool is missing.
func binary(t testing.TB, name string) string {
	t.Helper()
	bin, err := Binary(name)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Cosign runs the cosign CLI (from the tool cache) with keys from files and no transparency log:
// what a release pipeline with its own key does, offline.
type Cosign struct {
	bin, dir, password string
}

// NewCosign is a cosign whose keys live in a test folder, under a random password.
func NewCosign(t testing.TB) *Cosign {
	t.Helper()
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	return &Cosign{bin: binary(t, "cosign"), dir: t.TempDir(), password: hex.EncodeToString(raw)}
}

// KeyPair generates the key pair name and returns its public key (the PEM of name.pub).
func (c *Cosign) KeyPair(t testing.TB, name string) string {
	t.Helper()
	c.run(t, "generate-key-pair", "--output-key-prefix="+filepath.Join(c.dir, name))
	pub, err := os.ReadFile(filepath.Join(c.dir, name+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	return string(pub)
}

// Sign signs the image ref (by digest) with key name.
func (c *Cosign) Sign(t testing.TB, key, ref string) {
	t.Helper()
	c.run(t, "sign", "--key="+c.key(key), "--tlog-upload=false", "--yes", ref)
}

// AttestVuln attaches predicate (a Trivy scan, --format cosign-vuln) to ref as a vulnerability
// attestation signed with key name.
func (c *Cosign) AttestVuln(t testing.TB, key, ref string, predicate []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "scan.json")
	if err := os.WriteFile(file, predicate, 0o600); err != nil {
		t.Fatal(err)
	}
	c.run(t, "attest", "--key="+c.key(key), "--type=vuln", "--predicate="+file, "--tlog-upload=false", "--yes", ref)
}

func (c *Cosign) key(name string) string { return filepath.Join(c.dir, name+".key") }

func (c *Cosign) run(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+c.password, "HOME="+c.dir, "TUF_ROOT="+filepath.Join(c.dir, "tuf"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
	}
}

// GoAdvisory is one advisory on a Go module, as GitHub's advisory database publishes it.
type GoAdvisory struct {
	ID, Module, Title   string
	Vulnerable, Patched string // version ranges, e.g. "<0.3.8" and "0.3.8"
	Severity            string // Trivy's: LOW, MEDIUM, HIGH, CRITICAL
}

// ghsaGo is the data source Trivy names the Go advisories of GitHub's database by.
var ghsaGo = types.DataSource{ID: vulnerability.GHSA, Name: "GitHub Security Advisory Go", URL: "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Ago"}

// TrivyDB writes a Trivy vulnerability database into cacheDir (Trivy's --cache-dir) holding the
// advisories, with Trivy's own database library: the layout, buckets and metadata Trivy reads,
// valid for a day. The database cannot be downloaded here; its content is what the test needs.
func TrivyDB(cacheDir string, advisories ...GoAdvisory) error {
	dir := filepath.Join(cacheDir, "db")
	if err := db.Init(dir); err != nil {
		return err
	}
	defer db.Close()
	source, err := bucket.NewGo(ghsaGo)
	if err != nil {
		return err
	}
	dbc := db.Config{}
	err = dbc.BatchUpdate(func(tx *bolt.Tx) error {
		if err := dbc.PutDataSource(tx, source.Name(), ghsaGo); err != nil {
			return err
		}
		for _, a := range advisories {
			severity, err := types.NewSeverity(a.Severity)
			if err != nil {
				return err
			}
			advisory := types.Advisory{VulnerableVersions: []string{a.Vulnerable}, PatchedVersions: []string{a.Patched}}
			if err := dbc.PutAdvisory(tx, []string{source.Name(), a.Module}, a.ID, &advisory); err != nil {
				return err
			}
			vuln := types.Vulnerability{Title: a.Title, Severity: a.Severity, VendorSeverity: types.VendorSeverity{vulnerability.GHSA: severity}}
			if err := dbc.PutVulnerability(tx, a.ID, vuln); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	return metadata.NewClient(dir).Update(metadata.Metadata{Version: db.SchemaVersion, NextUpdate: now.Add(24 * time.Hour), UpdatedAt: now, DownloadedAt: now})
}

// TrivyScan scans the image ref in the registry with the database in cacheDir, offline, and
// returns the result as a cosign vulnerability predicate (--format cosign-vuln).
func TrivyScan(t testing.TB, cacheDir, ref string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "scan.json")
	cmd := exec.Command(binary(t, "trivy"), "image", "--cache-dir="+cacheDir, "--skip-db-update", "--skip-java-db-update", "--offline-scan",
		"--skip-version-check", "--disable-telemetry", "--scanners=vuln", "--image-src=remote", "--format=cosign-vuln", "--output="+out, ref)
	cmd.Env = append(os.Environ(), "HOME="+cacheDir)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("trivy image %s: %v\n%s", ref, err, log.String())
	}
	scan, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return scan
}
