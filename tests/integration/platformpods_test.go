package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/backup/etcdsnapshot"
	"github.com/kplane/kplane/components/backup/objstore"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/stacks/platform"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/identitydemo"
)

// TestPlatformPods: the composed dev platform (environments/dev) on a cluster with a real node,
// where the platform's own work happens in pods, from images built here and referenced as the
// dev environment references them. `up` waits for every Deployment, DaemonSet and Job to be
// really ready or complete; the realm sync Job's pod makes the realm in Keycloak (alice logs in
// through its LDAP federation); the Vault bootstrap Job's pod configures a real Vault-API server
// (OpenBao: a service logs in with its ServiceAccount token) and the rotation CronJob's pod
// rotates the service's secret; the catalog's pods discover that realm; istiod validates
// kplane's Istio objects and its injector adds the sidecar to a new pod of a mesh namespace;
// Velero, installed by its chart with the AWS plugin, backs up the team namespaces on its own
// schedule into the local S3 store (SeaweedFS, credentials checked) and restores a deleted
// object from that backup; the etcd snapshot CronJob's pod, on the node labelled as a control
// plane, uploads a snapshot of the cluster's etcd that downloads and verifies.
func TestPlatformPods(t *testing.T) {
	c, refs := podsCluster(t, "pods")
	ctx := context.Background()
	host, err := c.HostAddress(ctx)
	require.NoError(t, err)

	cs, err := c.Clientset()
	require.NoError(t, err)
	dc, err := c.Dynamic()
	require.NoError(t, err)
	store := testbed.StartSeaweedFSWith(t, testbed.SeaweedFSOptions{Dir: t.TempDir(), AccessKey: "kplane-dev", SecretKey: "kplane-dev-secret",
		IP: host, Flags: backup.NFSStoreFlags("kplane-dev")}) // one bucket, as make up's store
	podsSecret(t, ctx, cs, "velero", "kplane-backup-s3", map[string]string{"cloud": "[default]\naws_access_key_id=kplane-dev\naws_secret_access_key=kplane-dev-secret\n"})
	realm := podsIdentity(t, ctx, cs, host)
	bao := podsVault(t, ctx, c, cs, host)
	pkiDir := podsControlPlane(t, ctx, c, cs)

	cfg := podsConfig(t, c, store.URL, refs, realm)
	podsSecretsAndSnapshots(t, c, cfg, bao, host, pkiDir, store.URL)
	s := openStack(t, "dev", platform.Program, cfg, t.TempDir())
	start := time.Now()
	up, err := s.Up(ctx)
	if err != nil {
		podReport(t, ctx, cs)
	}
	require.NoError(t, err)
	t.Logf("composed dev platform up in real pods: %d resources in %.1f s", resourceCount(up.Summary.ResourceChanges), time.Since(start).Seconds())

	realmConfigured(t, ctx, cs, realm)
	vaultConfigured(t, ctx, cs, bao)
	sidecarInjected(t, ctx, dc)
	scheduledBackupRestores(t, ctx, cs, dc, store.URL)
	etcdSnapshotUploaded(t, ctx, cs, store.URL)

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
}

// podsCluster is a cluster with one real node holding the upstream images built here and
// kplane's own, deleted when the test ends, and the upstream images' references by short name.
// The real-pod end-to-end tests run in make e2e-pods only (KPLANE_E2E_PODS=1): they are slow,
// and one at a time, since real nodes share the machine's network and cgroups.
func podsCluster(t *testing.T, name string) (*testbed.Cluster, map[string]string) {
	integrationAlone(t)
	if os.Getenv("KPLANE_E2E_PODS") == "" {
		t.Skip("the platform in real pods: make e2e-pods (KPLANE_E2E_PODS=1)")
	}
	require.Equal(t, 0, os.Getuid(), "real nodes need root (network namespaces, cgroups, mounts)")
	ctx := context.Background()
	begin := time.Now()
	c, err := testbed.Start(ctx, name, t.TempDir(), testbed.Options{RealNodes: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Delete() })
	upstream, refs, err := testbed.UpstreamImages(ctx)
	require.NoError(t, err)
	require.NoError(t, c.ImportImages(ctx, upstream))
	require.NoError(t, c.ImportKplaneImages(ctx, "registry.example.com/kplane"))
	t.Logf("a real node with the platform's images in %.1f s", time.Since(begin).Seconds())
	return c, refs
}

// TestGatekeeperPods: the Gatekeeper engine with its manager in pods on a real node, from the
// image built here and pinned (admission.gatekeeper.image): its controller compiles kplane's
// templates into constraint kinds (on the KWOK bed a host process plays it), its certificate
// controller puts the webhook's CA in place, and the shared baseline scenario is refused by its
// webhook, each with the policy, the field and the fix.
func TestGatekeeperPods(t *testing.T) {
	c, refs := podsCluster(t, "gk-pods")
	ctx := context.Background()
	cs, err := c.Clientset()
	require.NoError(t, err)
	dc, err := c.Dynamic()
	require.NoError(t, err)
	b := baseline{prefix: "gkp"}
	args := b.args()
	args.Admission.Engine = "gatekeeper"
	args.Admission.Gatekeeper.Chart.Path = filepath.Join(os.Getenv("KPLANE_CHARTS"), "gatekeeper")
	args.Admission.Gatekeeper.Image = refs["gatekeeper"]
	args.Admission.Gatekeeper.Values = map[string]any{"replicas": 1}
	s := hardenedStack(t, c, "gatekeeper-pods", args, b.setup)
	start := time.Now()
	_, err = s.Up(ctx)
	if err != nil {
		podReport(t, ctx, cs)
	}
	require.NoError(t, err)
	t.Logf("up with Gatekeeper in pods in %.1f s", time.Since(start).Seconds())
	b.check(t, dc)
	_, err = s.Destroy(ctx)
	require.NoError(t, err)
}

// podsConfig is environments/dev for the real-pod cluster. Its istiod and CNI agent images are
// the ones built here (dev pins them: the same source and Go give the same digests). Added: the
// realm at the host's address with its CA, and its sync in the cluster; the node's CNI folders;
// Velero installed by its chart (on the KWOK bed it runs beside the cluster) from the images
// built here, the store at the host's address and the team schedule every minute.
func podsConfig(t *testing.T, c *testbed.Cluster, s3URL string, refs map[string]string, realm *podsRealm) auto.ConfigMap {
	cfg := environmentConfig(t, "dev", c.Kubeconfig, s3URL)
	cfg["kplane:identity"] = patchJSON(t, cfg["kplane:identity"], func(id map[string]any) {
		id["keycloakURL"], id["issuerCA"] = realm.kc.URL, string(realm.kc.CA)
		id["ldap"].(map[string]any)["url"] = realm.ldap.URL
		id["sync"] = map[string]any{"adminSecret": "keycloak-admin", "ldapSecret": "ldap-bind"}
	})
	var mesh struct {
		CNI       struct{ Image string } `json:"cni"`
		Revisions []struct {
			PilotImage string `json:"pilotImage"`
		} `json:"revisions"`
	}
	require.NoError(t, json.Unmarshal([]byte(cfg["kplane:mesh"].Value), &mesh))
	const built = "environments/dev pins it as built here (tools/build.sh images; the test bed's image: tests/testbed/upstream.go)"
	require.Equal(t, refs["pilot"], mesh.Revisions[0].PilotImage, built)
	require.Equal(t, refs["install-cni"], mesh.CNI.Image, built)
	nodes, err := filepath.Glob(filepath.Join(c.Dir, "nodes", "*", "cni"))
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	cfg["kplane:mesh"] = patchJSON(t, cfg["kplane:mesh"], func(m map[string]any) { // the node's CNI folders (its /opt/cni/bin, /etc/cni/net.d)
		m["cni"].(map[string]any)["binDir"], m["cni"].(map[string]any)["confDir"] = filepath.Join(nodes[0], "bin"), filepath.Join(nodes[0], "net.d")
	})
	cfg["kplane:backup"] = patchJSON(t, cfg["kplane:backup"], func(b map[string]any) {
		b["install"] = map[string]any{"image": refs["velero"], "pluginImage": refs["velero-plugin-for-aws"]}
		b["teams"] = map[string]any{"cron": "* * * * *", "ttl": "1h"}
	})
	return cfg
}

// podsRealm: the dev environment's identity services on this machine, Keycloak where pods reach it.
type podsRealm struct {
	kc   *testbed.Keycloak
	ldap *testbed.LDAP
}

// podsIdentity starts OpenLDAP with the demo organisation of dev's teams (alice in payments;
// Keycloak reaches it on loopback) and Keycloak at the host's address (its certificate names
// it), with no realm yet: the realm sync Job makes it. The Secrets the dev environment names
// (Keycloak's administrator, the LDAP bind password, the portal's session key) come first.
func podsIdentity(t *testing.T, ctx context.Context, cs kubernetes.Interface, host string) *podsRealm {
	ldap, err := testbed.StartLDAP(ctx, t.TempDir(), "dc=example,dc=org", identitydemo.Org("dc=example,dc=org", "payments", "web")) // dev's teams
	require.NoError(t, err)
	t.Cleanup(ldap.Stop)
	kc, err := testbed.StartKeycloakWith(ctx, t.TempDir(), testbed.ServiceOptions{IP: host})
	require.NoError(t, err)
	t.Cleanup(kc.Stop)
	podsSecret(t, ctx, cs, "kplane-identity", "keycloak-admin", map[string]string{"username": kc.AdminUser, "password": kc.AdminPassword})
	podsSecret(t, ctx, cs, "kplane-identity", "ldap-bind", map[string]string{"bindPassword": ldap.BindPassword})
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	podsSecret(t, ctx, cs, "kplane-gateway", "catalog-session", map[string]string{"session-key": hex.EncodeToString(key)})
	return &podsRealm{kc: kc, ldap: ldap}
}

// realmConfigured: the realm sync Job's pod made the realm in Keycloak, with the LDAP federation
// (alice logs in with her directory password).
func realmConfigured(t *testing.T, ctx context.Context, cs kubernetes.Interface, realm *podsRealm) {
	jobs, err := cs.BatchV1().Jobs("kplane-identity").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, jobs.Items)
	assert.EqualValues(t, 1, jobs.Items[0].Status.Succeeded, "the realm sync Job's pod succeeded")
	httpClient, err := realm.kc.HTTPClient()
	require.NoError(t, err)
	issuer := realm.kc.URL + "/realms/kplane"
	_, err = identitydemo.OIDCAccessToken(httpClient, issuer, "grafana", "https://127.0.0.1:3000/login/generic_oauth", "alice", identitydemo.AlicePassword, false)
	require.NoError(t, err, "alice logs in to the realm the Job made, through the LDAP federation")
}

// podsSecret creates a Secret the environment names (and its namespace, which the platform then
// adopts), as the secret store would deliver it before `up`.
func podsSecret(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, data map[string]string) {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// sidecarInjected: istiod's injector (reached by the API server at istiod's pod) adds the proxy
// to a new pod of a mesh namespace. A server-side dry run: the proxy itself (Envoy) is C++ and
// cannot be built here, so the pod would never start.
func sidecarInjected(t *testing.T, ctx context.Context, dc dynamic.Interface) {
	spec := rules.GoodPodSpec()
	obj, _, _ := fixtures.Workload("Pod", "payments", "ledger-probe", spec)
	var got *unstructured.Unstructured
	require.Eventually(t, func() bool { // istiod's webhook configuration is patched with its CA once it serves
		var err error
		got, err = dc.Resource(gvrPod).Namespace("payments").Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Logf("dry-run pod: %v", err)
			return false
		}
		return containerNamed(got, "istio-proxy")
	}, 90*time.Second, 2*time.Second, "istiod injects the sidecar into a new pod of payments")
	assert.Contains(t, got.GetAnnotations(), "sidecar.istio.io/status")
}

func containerNamed(pod *unstructured.Unstructured, name string) bool {
	for _, field := range []string{"containers", "initContainers"} {
		list, _, _ := unstructured.NestedSlice(pod.Object, "spec", field)
		for _, c := range list {
			if c.(map[string]any)["name"] == name {
				return true
			}
		}
	}
	return false
}

// scheduledBackupRestores: a ConfigMap in payments is in the next backup the team schedule makes
// by itself, that backup's files are in the store, and a restore from it brings the deleted
// ConfigMap back with its data.
func scheduledBackupRestores(t *testing.T, ctx context.Context, cs kubernetes.Interface, dc dynamic.Interface, s3URL string) {
	cm, err := cs.CoreV1().ConfigMaps("payments").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ledger-settings"},
		Data: map[string]string{"currency": "KRW"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	var backup string
	require.Eventually(t, func() bool { // the first of the schedule's backups that started after the ConfigMap
		list, err := dc.Resource(veleroBackups).Namespace("velero").List(ctx, metav1.ListOptions{LabelSelector: "velero.io/schedule-name=kplane-teams"})
		if err != nil {
			return false
		}
		for _, b := range list.Items {
			if b.GetCreationTimestamp().After(cm.CreationTimestamp.Time) && str(&b, "status", "phase") == "Completed" {
				backup = b.GetName()
				return true
			}
		}
		return false
	}, 3*time.Minute, 2*time.Second, "the team schedule's backup, made by Velero's pod on its own")
	t.Logf("scheduled backup %s", backup)

	bucket, err := objstore.New(objstore.Bucket{Name: "kplane-dev", Prefix: "velero/dev", Endpoint: s3URL, AccessKey: "kplane-dev", SecretKey: "kplane-dev-secret"})
	require.NoError(t, err)
	keys, err := bucket.List(ctx, "backups/"+backup+"/")
	require.NoError(t, err)
	assert.Contains(t, keys, "backups/"+backup+"/"+backup+".tar.gz", "the backup's contents are in the store")

	require.NoError(t, cs.CoreV1().ConfigMaps("payments").Delete(ctx, "ledger-settings", metav1.DeleteOptions{}))
	restore := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "velero.io/v1", "kind": "Restore",
		"metadata": map[string]any{"name": backup + "-restore"},
		"spec":     map[string]any{"backupName": backup, "includedNamespaces": []any{"payments"}}}}
	_, err = dc.Resource(veleroRestores).Namespace("velero").Create(ctx, restore, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := dc.Resource(veleroRestores).Namespace("velero").Get(ctx, backup+"-restore", metav1.GetOptions{})
		return err == nil && str(r, "status", "phase") == "Completed"
	}, 2*time.Minute, time.Second, "Velero's pod restores from the scheduled backup")
	back, err := cs.CoreV1().ConfigMaps("payments").Get(ctx, "ledger-settings", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "KRW", back.Data["currency"])
	// Velero holds a finalizer on each Restore that only Velero removes: the Restore goes while
	// Velero runs, or the platform's destroy waits on Velero's CRDs forever.
	require.NoError(t, dc.Resource(veleroRestores).Namespace("velero").Delete(ctx, backup+"-restore", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		_, err := dc.Resource(veleroRestores).Namespace("velero").Get(ctx, backup+"-restore", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, time.Minute, time.Second, "Velero finalizes the deleted Restore")
}

// podReport logs every pod that is not running or ready, with its containers' states and
// events: what a failed up left behind.
func podReport(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		if testbed.PodReady(&p) {
			continue
		}
		raw, _ := json.Marshal(p.Status.ContainerStatuses)
		t.Logf("pod %s/%s %s: %s", p.Namespace, p.Name, p.Status.Phase, raw)
	}
	events, _ := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	for _, e := range events.Items {
		t.Logf("event %s/%s: %s %s", e.Namespace, e.InvolvedObject.Name, e.Reason, e.Message)
	}
}

// podsVault starts OpenBao where pods reach it and delivers the bootstrap's token Secret (out of
// band, as a platform team would); External Secrets' CRDs stand in for its installation (its
// controller cannot be built here: docs/images.md), so the SecretStores are accepted.
func podsVault(t *testing.T, ctx context.Context, c *testbed.Cluster, cs kubernetes.Interface, host string) *testbed.OpenBao {
	eso := "github.com/external-secrets/external-secrets@" + pinned(t, "EXTERNAL_SECRETS_VERSION")
	upstreamCRD(t, c, eso, "config/crds/bases/external-secrets.io_secretstores.yaml")
	upstreamCRD(t, c, eso, "config/crds/bases/external-secrets.io_externalsecrets.yaml")
	bao := testbed.StartOpenBaoWith(t, testbed.OpenBaoOptions{IP: host})
	podsSecret(t, ctx, cs, hardenedcluster.SecretsNamespace, "vault-bootstrap-token", map[string]string{"token": bao.RootToken})
	return bao
}

// podsControlPlane makes the real node a control-plane node as kubeadm leaves one: its role
// label, and etcd's CA and the API server's etcd client certificate in kubeadm's layout (a
// folder on the node the snapshot pod mounts). It returns that folder. The snapshots' store
// credentials come first, out of band.
func podsControlPlane(t *testing.T, ctx context.Context, c *testbed.Cluster, cs kubernetes.Interface) string {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kplane.io/real-node=true"})
	require.NoError(t, err)
	require.Len(t, nodes.Items, 1)
	node := nodes.Items[0]
	node.Labels["node-role.kubernetes.io/control-plane"] = ""
	_, err = cs.CoreV1().Nodes().Update(ctx, &node, metav1.UpdateOptions{})
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "etcd"), 0o700))
	for from, to := range map[string]string{"etcd-ca.crt": "etcd/ca.crt", "apiserver-etcd-client.crt": "apiserver-etcd-client.crt", "apiserver-etcd-client.key": "apiserver-etcd-client.key"} {
		raw, err := os.ReadFile(filepath.Join(c.Dir, "pki", from))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, to), raw, 0o600))
	}
	podsSecret(t, ctx, cs, backup.EtcdSnapshotNamespace, "etcd-snapshot-s3", map[string]string{"AWS_ACCESS_KEY_ID": "kplane-dev", "AWS_SECRET_ACCESS_KEY": "kplane-dev-secret"})
	return dir
}

// podsSecretsAndSnapshots adds to the dev environment what staging has and dev leaves out: Vault
// (OpenBao at the host's address, the bootstrap in the cluster, the ledger's database secret
// rotated every minute) and etcd snapshots every minute from the node's member into the store.
func podsSecretsAndSnapshots(t *testing.T, c *testbed.Cluster, cfg auto.ConfigMap, bao *testbed.OpenBao, host, pkiDir, s3URL string) {
	clusterCA, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.crt"))
	require.NoError(t, err)
	cfg["kplane:security"] = patchJSON(t, cfg["kplane:security"], func(sec map[string]any) {
		sec["secrets"] = map[string]any{"vaultAddress": bao.URL, "vaultCABundle": string(bao.CA), "operator": map[string]any{"external": true},
			"bootstrap": map[string]any{"tokenSecret": "vault-bootstrap-token", "kubernetesCaCert": string(clusterCA),
				"kubernetesHost": fmt.Sprintf("https://127.0.0.1:%d", c.Port)}} // as OpenBao, on the host, reaches the API server
		for _, svc := range sec["services"].([]any) {
			if svc := svc.(map[string]any); svc["name"] == "ledger" {
				svc["secrets"] = []any{map[string]any{"name": "db", "rotate": map[string]any{"keys": []any{"password"}, "schedule": "* * * * *"}}}
			}
		}
	})
	cfg["kplane:backup"] = patchJSON(t, cfg["kplane:backup"], func(b map[string]any) {
		b["etcdSnapshots"] = map[string]any{"bucket": "kplane-dev", "s3Endpoint": s3URL, "credentialsSecret": "etcd-snapshot-s3",
			"schedule": "* * * * *", "endpoint": fmt.Sprintf("https://%s:%d", host, c.EtcdPort), "pkiDir": pkiDir}
	})
}

// vaultConfigured: the bootstrap Job's pod configured OpenBao (the ledger logs in with its
// ServiceAccount token and reads its own secret), and the rotation CronJob's pod rotated the
// ledger's database password, keeping its other keys.
func vaultConfigured(t *testing.T, ctx context.Context, cs kubernetes.Interface, bao *testbed.OpenBao) {
	admin := vaultClient(t, bao, bao.RootToken)
	_, err := admin.KVv2("secret").Put(ctx, "payments/ledger/db", map[string]any{"username": "ledger", "password": "initial"})
	require.NoError(t, err)
	tok, err := cs.CoreV1().ServiceAccounts("payments").CreateToken(ctx, "ledger", &authv1.TokenRequest{}, metav1.CreateOptions{})
	require.NoError(t, err)
	ledger := vaultClient(t, bao, "")
	login, err := ledger.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{"role": "payments-ledger", "jwt": tok.Status.Token})
	require.NoError(t, err, "the bootstrap Job's pod made the ledger's role")
	ledger.SetToken(login.Auth.ClientToken)
	require.Eventually(t, func() bool { // a rotation after the Put: the password is new, the username kept
		s, err := ledger.KVv2("secret").Get(ctx, "payments/ledger/db")
		return err == nil && s.Data["username"] == "ledger" && s.Data["password"] != "initial"
	}, 3*time.Minute, 3*time.Second, "the rotation CronJob's pod rotates the ledger's password")
}

// etcdSnapshotUploaded: the etcd snapshot CronJob's pod put a snapshot of the cluster's etcd in
// the store; it downloads intact (its recorded checksum) and verifies (a control plane's keys).
func etcdSnapshotUploaded(t *testing.T, ctx context.Context, cs kubernetes.Interface, s3URL string) {
	store, err := etcdsnapshot.NewStore(etcdsnapshot.Bucket{Name: "kplane-dev", Prefix: "etcd/dev/", Endpoint: s3URL, AccessKey: "kplane-dev", SecretKey: "kplane-dev-secret"})
	require.NoError(t, err)
	var keys []string
	require.Eventually(t, func() bool {
		keys, err = store.List(ctx)
		return err == nil && len(keys) > 0
	}, 3*time.Minute, 3*time.Second, "the snapshot CronJob's pod uploads a snapshot")
	info, err := store.Download(ctx, keys[len(keys)-1], filepath.Join(t.TempDir(), "etcd.db"))
	require.NoError(t, err)
	assert.Greater(t, info.Keys, 50, "a control plane's objects")
	t.Logf("etcd snapshot %s: %d bytes, revision %d, %d keys", keys[len(keys)-1], info.Size, info.Revision, info.Keys)
	jobs, err := cs.BatchV1().Jobs(backup.EtcdSnapshotNamespace).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	succeeded := 0
	for _, j := range jobs.Items {
		succeeded += int(j.Status.Succeeded)
	}
	assert.Positive(t, succeeded, "the schedule's Job succeeded")
}
