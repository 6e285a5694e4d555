// Package etcdsnapshot backs up and restores the etcd of a control plane the platform runs:
// a snapshot taken from one live member over mutual TLS, verified (the SHA-256 etcd appends to
// a snapshot, then bbolt's own consistency check, revision and key count), uploaded to an S3
// bucket with its checksum, old snapshots pruned; and the restore into a new data directory
// with the revision bumped and marked compacted, so the API server's watchers relist instead of
// missing changes (etcdutl snapshot restore --bump-revision --mark-compacted).
package etcdsnapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	clientsnapshot "go.etcd.io/etcd/client/v3/snapshot"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// Member is the etcd member a snapshot is taken from.
type Member struct {
	// Endpoint is the member's client URL (https://10.0.0.10:2379); snapshots come from one member.
	Endpoint string
	// CAFile, CertFile and KeyFile: etcd's CA and a client certificate etcd accepts (kubeadm:
	// /etc/kubernetes/pki/etcd/ca.crt, /etc/kubernetes/pki/apiserver-etcd-client.{crt,key}).
	CAFile, CertFile, KeyFile string
}

// Info describes a verified snapshot.
type Info struct {
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"` // of the whole file, as uploaded
	Revision int64     `json:"revision"`
	Keys     int       `json:"keys"`
	Version  string    `json:"version"` // etcd's storage version
	Taken    time.Time `json:"taken"`
}

// Save takes a snapshot from the member into path (written only when complete).
func Save(ctx context.Context, m Member, path string) error {
	cfg := clientv3.Config{Endpoints: []string{m.Endpoint}, DialTimeout: 10 * time.Second}
	if m.CAFile != "" || m.CertFile != "" {
		tlsInfo := transport.TLSInfo{TrustedCAFile: m.CAFile, CertFile: m.CertFile, KeyFile: m.KeyFile}
		tc, err := tlsInfo.ClientConfig()
		if err != nil {
			return fmt.Errorf("etcd client certificate (caFile, certFile, keyFile): %w", err)
		}
		tc.MinVersion = tls.VersionTLS12
		cfg.TLS = tc
	}
	if _, err := clientsnapshot.SaveWithVersion(ctx, zap.NewNop(), cfg, path); err != nil {
		return fmt.Errorf("snapshot of etcd %s: %w", m.Endpoint, err)
	}
	return nil
}

// ErrTampered is returned for a snapshot whose content does not match its embedded checksum.
var ErrTampered = errors.New("snapshot does not match its embedded SHA-256 (corrupted or altered)")

// Verify checks a snapshot taken from a live member: the SHA-256 etcd appends to it, then the
// database itself (bbolt's consistency check), and reports its revision and live keys.
func Verify(path string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Info{}, err
	}
	info := Info{Path: path, Size: fi.Size(), Taken: fi.ModTime().UTC()}
	// A live snapshot is the database padded to 512-byte sectors plus a 32-byte SHA-256 of it.
	if info.Size%512 != sha256.Size {
		return info, fmt.Errorf("%s: %d bytes: not a snapshot of a live member (no embedded checksum; a copied data file cannot be verified)", path, info.Size)
	}
	// One streaming pass (snapshots reach gigabytes): the body's hash and the whole file's.
	body, whole := sha256.New(), sha256.New()
	if _, err := io.CopyN(io.MultiWriter(body, whole), f, info.Size-sha256.Size); err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	trailer := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, trailer); err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	if !bytes.Equal(body.Sum(nil), trailer) {
		return info, fmt.Errorf("%s: %w", path, ErrTampered)
	}
	whole.Write(trailer)
	info.SHA256 = hex.EncodeToString(whole.Sum(nil))
	// bbolt reads the database (the checksum trailer sits beyond its last page).
	st, err := snapshot.NewV3(zap.NewNop()).Status(path)
	if err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	info.Revision, info.Keys, info.Version = st.Revision, st.TotalKey, st.Version
	return info, nil
}

// RevisionBump is how far a restore moves the revision forward (FACTS: 1,000,000,000): beyond
// anything the API server and its clients have seen, so nobody mistakes old for new.
const RevisionBump = 1_000_000_000

// RestoreMember is the member a restored data directory is for. A cluster of N members is
// restored from one snapshot into N directories, one per member, each with its own Name and
// PeerURL and the same InitialCluster and Token, so the N form one cluster again.
type RestoreMember struct {
	// Name and PeerURL of this member (etcd's --name and --initial-advertise-peer-urls).
	Name, PeerURL string
	// InitialCluster lists every member as name=peerURL,... (etcd's --initial-cluster); empty:
	// this member alone.
	InitialCluster string
	// Token is the new cluster's --initial-cluster-token (empty: derived from InitialCluster,
	// the same for every member restored with it).
	Token string
}

// Validate checks the member against its cluster (before anything is downloaded).
func (m RestoreMember) Validate() error { _, err := m.withDefaults(); return err }

// withDefaults checks the member against its cluster and fills the defaults.
func (m RestoreMember) withDefaults() (RestoreMember, error) {
	if m.Name == "" || m.PeerURL == "" {
		return m, errors.New("restore: the member's name and peer URL are required (the --name and --initial-advertise-peer-urls etcd will run with)")
	}
	self := m.Name + "=" + m.PeerURL
	if m.InitialCluster == "" {
		m.InitialCluster = self
	}
	names := map[string]bool{}
	found := false
	for _, entry := range strings.Split(m.InitialCluster, ",") {
		name, url, ok := strings.Cut(entry, "=")
		if !ok || name == "" || url == "" {
			return m, fmt.Errorf("restore: initial cluster entry %q: want name=peerURL", entry)
		}
		if names[name] {
			return m, fmt.Errorf("restore: initial cluster names member %q twice", name)
		}
		names[name], found = true, found || entry == self
	}
	if !found {
		return m, fmt.Errorf("restore: the initial cluster %q does not list this member as %s (the same list on every member, each restored with its own name and peer URL)", m.InitialCluster, self)
	}
	if m.Token == "" {
		sum := sha256.Sum256([]byte(m.InitialCluster))
		m.Token = "kplane-restore-" + hex.EncodeToString(sum[:6])
	}
	return m, nil
}

// Restore writes a new data directory (which must not exist) for member m from a verified
// snapshot, its revision bumped and marked compacted; start etcd (or the control plane) on it.
func Restore(snapshotPath, dataDir string, m RestoreMember) error {
	m, err := m.withDefaults()
	if err != nil {
		return err
	}
	if _, err := os.Stat(dataDir); err == nil {
		return fmt.Errorf("restore into %s: the directory exists; restore into a new one and point etcd at it", dataDir)
	}
	if _, err := Verify(snapshotPath); err != nil {
		return err
	}
	return snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath: snapshotPath, Name: m.Name, OutputDataDir: dataDir,
		PeerURLs: []string{m.PeerURL}, InitialCluster: m.InitialCluster, InitialClusterToken: m.Token,
		RevisionBump: RevisionBump, MarkCompacted: true,
	})
}

// copyFile is used by downloads: write r to path completely or not at all.
func copyFile(path string, r io.Reader) error {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(part)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(part, path)
}
