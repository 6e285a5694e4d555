package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/backup/etcdsnapshot"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/tests/testbed"
)

// TestEtcdSnapshotRestore: a snapshot of a real control plane's etcd (mutual TLS, from the live
// member) is verified and uploaded to an S3-compatible server; more is written; the snapshot is
// downloaded, checked against its recorded checksum and restored into a new data directory with
// the revision bumped; the control plane started on it shows the snapshot's state. A tampered
// snapshot is refused, and so are a missing bucket and an unreachable store, by name.
func TestEtcdSnapshotRestore(t *testing.T) {
	integration(t)
	ctx := context.Background()
	s3URL := testbed.S3(t, "backups")
	store, err := etcdsnapshot.NewStore(etcdsnapshot.Bucket{Name: "backups", Prefix: "etcd/test", Endpoint: s3URL, AccessKey: "kplane", SecretKey: "kplane-secret"})
	require.NoError(t, err)

	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	cs, err := c.Clientset()
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ledger"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	cm := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"balance": "1000"}}
	}
	_, err = cs.CoreV1().ConfigMaps("ledger").Create(ctx, cm("before"), metav1.CreateOptions{})
	require.NoError(t, err)

	pki := filepath.Join(c.Dir, "pki")
	member := etcdsnapshot.Member{Endpoint: fmt.Sprintf("https://127.0.0.1:%d", c.EtcdPort), CAFile: filepath.Join(pki, "etcd-ca.crt"),
		CertFile: filepath.Join(pki, "apiserver-etcd-client.crt"), KeyFile: filepath.Join(pki, "apiserver-etcd-client.key")}
	snap := filepath.Join(t.TempDir(), "etcd.db")
	require.NoError(t, etcdsnapshot.Save(ctx, member, snap))
	info, err := etcdsnapshot.Verify(snap)
	require.NoError(t, err)
	assert.Greater(t, info.Keys, 50, "a control plane's objects")
	t.Logf("snapshot: %d bytes, revision %d, %d keys, storage version %s", info.Size, info.Revision, info.Keys, info.Version)
	key, err := store.Upload(ctx, info)
	require.NoError(t, err)

	// A byte changed anywhere is caught before anything is restored from it.
	raw, err := os.ReadFile(snap)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0xff
	tampered := filepath.Join(t.TempDir(), "tampered.db")
	require.NoError(t, os.WriteFile(tampered, raw, 0o600))
	_, err = etcdsnapshot.Verify(tampered)
	assert.ErrorIs(t, err, etcdsnapshot.ErrTampered)
	assert.Error(t, etcdsnapshot.Restore(tampered, filepath.Join(t.TempDir(), "never"), etcdsnapshot.RestoreMember{Name: c.Name, PeerURL: "https://127.0.0.1:1"}))

	// Bad input is named.
	missing, err := etcdsnapshot.NewStore(etcdsnapshot.Bucket{Name: "nope", Endpoint: s3URL, AccessKey: "kplane", SecretKey: "kplane-secret"})
	require.NoError(t, err)
	_, err = missing.Upload(ctx, info)
	assert.ErrorContains(t, err, `bucket "nope" does not exist`)
	down, err := etcdsnapshot.NewStore(etcdsnapshot.Bucket{Name: "backups", Endpoint: "http://127.0.0.1:1", AccessKey: "kplane", SecretKey: "kplane-secret"})
	require.NoError(t, err)
	_, err = down.List(ctx)
	assert.ErrorContains(t, err, `bucket "backups" at http://127.0.0.1:1 unreachable`)
	assert.ErrorContains(t, etcdsnapshot.Save(ctx, etcdsnapshot.Member{Endpoint: member.Endpoint, CAFile: member.CAFile, CertFile: filepath.Join(pki, "nope.crt"), KeyFile: member.KeyFile}, snap+"x"),
		"etcd client certificate")

	// Written after the snapshot: gone after the restore.
	_, err = cs.CoreV1().ConfigMaps("ledger").Create(ctx, cm("after"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, c.Stop())

	got := filepath.Join(t.TempDir(), "restore.db")
	downloaded, err := store.Download(ctx, key, got)
	require.NoError(t, err)
	assert.Equal(t, info.SHA256, downloaded.SHA256)
	restored, err := testbed.New(c.Name, t.TempDir(), testbed.Options{NoNodes: true})
	require.NoError(t, err)
	restored.Port, restored.EtcdPort = c.Port, c.EtcdPort
	require.NoError(t, etcdsnapshot.Restore(got, filepath.Join(restored.Dir, "etcd"), etcdsnapshot.RestoreMember{Name: c.Name, PeerURL: fmt.Sprintf("https://127.0.0.1:%d", c.EtcdPort+1)}))
	assert.ErrorContains(t, etcdsnapshot.Restore(got, filepath.Join(restored.Dir, "etcd"), etcdsnapshot.RestoreMember{Name: c.Name, PeerURL: "https://127.0.0.1:1"}), "the directory exists")
	require.NoError(t, restored.Start(ctx))
	t.Cleanup(func() { _ = restored.Stop() })
	rcs, err := restored.Clientset()
	require.NoError(t, err)
	before, err := rcs.CoreV1().ConfigMaps("ledger").Get(ctx, "before", metav1.GetOptions{})
	require.NoError(t, err, "the snapshot's state is back")
	assert.Equal(t, "1000", before.Data["balance"])
	_, err = rcs.CoreV1().ConfigMaps("ledger").Get(ctx, "after", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "what came after the snapshot is not: %v", err)
	list, err := rcs.CoreV1().ConfigMaps("ledger").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	rv, err := strconv.ParseInt(list.ResourceVersion, 10, 64)
	require.NoError(t, err)
	assert.Greater(t, rv, int64(etcdsnapshot.RevisionBump), "revisions moved past anything clients saw, so watchers relist")
	_, err = rcs.CoreV1().ConfigMaps("ledger").Create(ctx, cm("later"), metav1.CreateOptions{})
	assert.NoError(t, err, "and the restored control plane takes writes")

	// The CronJob's own command on the restored member: snapshot, verify, upload, keep one.
	rpki := filepath.Join(restored.Dir, "pki")
	cmd := exec.Command(buildCommand(t, "github.com/kplane/kplane/cmd/kplane-etcd-snapshot"), "save",
		fmt.Sprintf("--endpoint=https://127.0.0.1:%d", restored.EtcdPort), "--cacert="+filepath.Join(rpki, "etcd-ca.crt"),
		"--cert="+filepath.Join(rpki, "apiserver-etcd-client.crt"), "--key="+filepath.Join(rpki, "apiserver-etcd-client.key"),
		"--bucket=backups", "--prefix=etcd/test", "--s3-endpoint="+s3URL, "--keep=1", "--work-dir="+t.TempDir())
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=kplane", "AWS_SECRET_ACCESS_KEY=kplane-secret")
	out, err := cmd.Output()
	require.NoError(t, err, "%s", out)
	var report struct {
		Snapshot etcdsnapshot.Info
		Key      string
		Pruned   []string
	}
	require.NoError(t, json.Unmarshal(out, &report))
	assert.Greater(t, report.Snapshot.Revision, int64(etcdsnapshot.RevisionBump))
	assert.Equal(t, []string{key}, report.Pruned, "the older snapshot is pruned")
	keys, err := store.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{report.Key}, keys)

	// The schedule, applied to a real API server.
	s := openStack(t, "etcd-snapshots", func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(restored.Kubeconfig)})
		if err != nil {
			return err
		}
		_, err = backup.NewEtcdSnapshots(ctx, "etcd", &backup.EtcdSnapshotsArgs{Image: "registry.example.com/kplane-etcd-snapshot" + rules.Digest,
			Bucket: "backups", CredentialsSecret: "etcd-backup", S3Endpoint: "https://s3.internal.example.com"}, pulumi.Provider(k8s))
		return err
	}, nil, t.TempDir())
	_, err = s.Up(ctx)
	require.NoError(t, err)
	cron, err := rcs.BatchV1().CronJobs("kplane-backup").Get(ctx, "kplane-etcd-snapshot", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "0 */6 * * *", cron.Spec.Schedule)
	_, err = s.Destroy(ctx)
	require.NoError(t, err)
}
