package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/backup/objstore"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/tests/testbed"
)

// TestBackupStores: the NFS store and bad locations, against a real S3 server that checks every
// request's signature — SeaweedFS with the NFS store's own flags and TLS, its data in a folder
// standing for the NFS export (the store's pod cannot run here; its objects are applied to a real
// API server). `pulumi up` declares the store and a Velero location at it: the location is
// Available, and a backup by the real Velero lands in the store. Then wrong credentials, a missing
// bucket and an unreachable store: `pulumi up` fails on each, each location says why, a backup
// into one fails validation, and the drill's bucket client names the refused credentials.
func TestBackupStores(t *testing.T) {
	integration(t)
	ctx := context.Background()
	data := t.TempDir()
	store := testbed.StartSeaweedFS(t, data, "velero-nfs", "nfs-secret-2026", true, backup.NFSStoreFlags("backups"))
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	require.NoError(t, testbed.InstallVelero(ctx, c))
	cs, err := c.Clientset()
	require.NoError(t, err)
	dyn, err := c.Dynamic()
	require.NoError(t, err)
	crt, err := os.ReadFile(filepath.Join(data, "s3.crt"))
	require.NoError(t, err)
	key, err := os.ReadFile(filepath.Join(data, "s3.key"))
	require.NoError(t, err)
	cloud := func(secret string) map[string]string {
		return map[string]string{"cloud": "[default]\naws_access_key_id=velero-nfs\naws_secret_access_key=" + secret + "\n"}
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "nfs-store"}, StringData: map[string]string{"AWS_ACCESS_KEY_ID": "velero-nfs", "AWS_SECRET_ACCESS_KEY": "nfs-secret-2026"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "nfs-store-tls"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": crt, "tls.key": key}},
		{ObjectMeta: metav1.ObjectMeta{Name: "backup-credentials"}, StringData: cloud("nfs-secret-2026")},
		{ObjectMeta: metav1.ObjectMeta{Name: "wrong-credentials"}, StringData: cloud("nfs-secret-2025")},
	} {
		_, err := cs.CoreV1().Secrets("velero").Create(ctx, s, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	v, err := testbed.StartVelero(ctx, c, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() {
		v.Stop()
		if t.Failed() {
			t.Logf("velero log:\n%s", testbed.LastLines(v.Log, 200))
		}
	})

	// The store's URL in the cluster is its Service's; here the same server listens on loopback.
	good := backup.Storage{Bucket: "backups", Prefix: "velero/ledger", URL: store.URL, CACert: string(store.CA), CredentialsSecret: "backup-credentials", WaitSeconds: 60}
	var bad []backup.Storage
	s := openStack(t, "backup-stores", func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		if _, err := backup.NewNFSStore(ctx, "nfs-store", &backup.NFSStoreArgs{Server: "nfs.internal.example.com", Path: "/exports/backups",
			Image: "registry.example.com/seaweedfs" + rules.Digest, Bucket: "backups", CredentialsSecret: "nfs-store", TLSSecret: "nfs-store-tls"},
			pulumi.Provider(k8s)); err != nil {
			return err
		}
		if _, err := backup.NewVelero(ctx, "nfs", &backup.VeleroArgs{Storage: good}, pulumi.Provider(k8s)); err != nil {
			return err
		}
		for _, b := range bad {
			if _, err := backup.NewVelero(ctx, b.Name, &backup.VeleroArgs{Storage: b}, pulumi.Provider(k8s)); err != nil {
				return err
			}
		}
		return nil
	}, nil, t.TempDir())
	start := time.Now()
	_, err = s.Up(ctx)
	require.NoError(t, err)
	t.Logf("pulumi up of the store and its location (waited for Available): %.1f s", time.Since(start).Seconds())
	assert.Equal(t, "Available", str(get(t, dyn, veleroBSLs, "velero", "default"), "status", "phase"))
	dep := get(t, dyn, gvrDeployment, "velero", "nfs-store")
	args, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	assert.Contains(t, args[0].(map[string]any)["args"], "-s3.autoCreateBucket=false", "the store runs with the flags this server ran with")

	// A real backup through the location lands in the store.
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ledger"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps("ledger").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "accounts"}, Data: map[string]string{"open": "42"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	veleroRun := func(name, location string) map[string]any {
		_, err := dyn.Resource(veleroBackups).Namespace("velero").Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "velero.io/v1", "kind": "Backup",
			"metadata": map[string]any{"name": name}, "spec": map[string]any{"includedNamespaces": []any{"ledger"}, "storageLocation": location, "ttl": "24h"}}}, metav1.CreateOptions{})
		require.NoError(t, err)
		var status map[string]any
		require.Eventually(t, func() bool {
			b := get(t, dyn, veleroBackups, "velero", name)
			status, _, _ = unstructured.NestedMap(b.Object, "status")
			p, _ := status["phase"].(string)
			return p == "Completed" || p == "PartiallyFailed" || p == "Failed" || p == "FailedValidation"
		}, 60*time.Second, 500*time.Millisecond, "backup %s finishes", name)
		return status
	}
	status := veleroRun("ledger-1", "default")
	require.Equal(t, "Completed", status["phase"], "%v", status)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, store.CA, 0o600))
	bucket, err := objstore.New(objstore.Bucket{Name: "backups", Prefix: "velero/ledger", Endpoint: store.URL, CAFile: caFile, AccessKey: "velero-nfs", SecretKey: "nfs-secret-2026"})
	require.NoError(t, err)
	keys, err := bucket.List(ctx, "backups/ledger-1/")
	require.NoError(t, err)
	assert.Contains(t, keys, "backups/ledger-1/ledger-1.tar.gz", "the backup is in the store: %v", keys)

	// Bad locations: `pulumi up` fails on each instead of every backup failing later.
	bad = []backup.Storage{
		{Name: "wrong-key", Bucket: "backups", URL: store.URL, CACert: string(store.CA), CredentialsSecret: "wrong-credentials"},
		{Name: "no-bucket", Bucket: "archive", URL: store.URL, CACert: string(store.CA), CredentialsSecret: "backup-credentials"},
		{Name: "unreachable", Bucket: "backups", URL: "https://127.0.0.1:1", CredentialsSecret: "backup-credentials"},
		{Name: "untrusted", Bucket: "backups", URL: store.URL, CredentialsSecret: "backup-credentials"},
	}
	for i := range bad {
		bad[i].Prefix, bad[i].Secondary, bad[i].WaitSeconds = "velero/ledger", true, 20
	}
	start = time.Now()
	_, err = s.Up(ctx)
	require.Error(t, err, "pulumi up must fail on unusable locations")
	t.Logf("pulumi up with four bad locations failed after %.1f s", time.Since(start).Seconds())
	for _, b := range bad {
		assert.Contains(t, err.Error(), b.Name+"-location", "the failure names the location")
	}
	for name, why := range map[string]string{"wrong-key": "SignatureDoesNotMatch", "no-bucket": "NoSuchBucket", "unreachable": "connection refused",
		"untrusted": "certificate signed by unknown authority"} {
		bsl := get(t, dyn, veleroBSLs, "velero", name)
		assert.Equal(t, "Unavailable", str(bsl, "status", "phase"), name)
		assert.Contains(t, str(bsl, "status", "message"), why, "Velero says why %s is unusable", name)
		t.Logf("%s: %.300s", name, str(bsl, "status", "message"))
	}
	assert.Equal(t, "Available", str(get(t, dyn, veleroBSLs, "velero", "default"), "status", "phase"), "a bad secondary location leaves the default alone")
	status = veleroRun("ledger-2", "wrong-key")
	assert.Equal(t, "FailedValidation", status["phase"], "no backup into an unusable location: %v", status)
	assert.Contains(t, status["validationErrors"], `backup can't be created because BackupStorageLocation wrong-key is in Unavailable status.`)
	wrong, err := objstore.New(objstore.Bucket{Name: "backups", Endpoint: store.URL, CAFile: caFile, AccessKey: "velero-nfs", SecretKey: "nfs-secret-2025"})
	require.NoError(t, err)
	_, err = wrong.List(ctx, "")
	assert.ErrorContains(t, err, `bucket "backups" refused the credentials (SignatureDoesNotMatch): check the backup Secret's access key and secret key`)
	assert.NotContains(t, err.Error(), "nfs-secret-2025", "no secret in the message")

	bad = nil
	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	_, err = cs.CoreV1().PersistentVolumes().Get(ctx, "velero-nfs-store", metav1.GetOptions{})
	assert.NoError(t, err, "the export's volume (the backups) outlives the stack")
}
