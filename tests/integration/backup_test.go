package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	k8sclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/backup/drill"
	"github.com/kplane/kplane/components/backup/inventory"
	"github.com/kplane/kplane/components/backup/objstore"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/tests/testbed"
)

var (
	veleroBackups   = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backups"}
	veleroRestores  = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "restores"}
	veleroBSLs      = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backupstoragelocations"}
	veleroSchedules = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "schedules"}
	widgets         = schema.GroupVersionResource{Group: "shop.example.com", Version: "v1", Resource: "widgets"}
)

// TestVeleroBackupRestoreMigrate: two real control planes, each with a real Velero server and
// velero-plugin-for-aws, one S3-compatible store. `pulumi up` of the backup component declares
// the storage location (read-write on the source, read-only on the target) and a schedule. A
// namespace with a Deployment, Service, ConfigMap, Secret and a custom resource is backed up,
// restored into a mapped namespace on the same cluster and migrated to the other: every object
// accounted for, data identical (not Velero's phase: its inventory).
func TestVeleroBackupRestoreMigrate(t *testing.T) {
	integration(t)
	ctx := context.Background()
	s3URL := testbed.S3(t, "backups")

	clusters := testbed.StartN(t, 2, testbed.Options{Nodes: 1})
	type side struct {
		c    *testbed.Cluster
		cs   k8sclient.Interface
		dyn  dynamic.Interface
		name string
	}
	var sides []side
	for i, c := range clusters {
		require.NoError(t, testbed.InstallVelero(ctx, c))
		cs, err := c.Clientset()
		require.NoError(t, err)
		dyn, err := c.Dynamic()
		require.NoError(t, err)
		// The bucket's credentials, as the platform's secret store would deliver them.
		_, err = cs.CoreV1().Secrets("velero").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "backup-credentials"},
			StringData: map[string]string{"cloud": "[default]\naws_access_key_id=kplane\naws_secret_access_key=kplane-secret\n"}}, metav1.CreateOptions{})
		require.NoError(t, err)
		if i == 0 { // the target lacks the shop's dependencies until the migration pre-check names them
			shopDependencies(t, ctx, cs, dyn)
		}
		sides = append(sides, side{c: c, cs: cs, dyn: dyn, name: []string{"source", "target"}[i]})
	}
	src, dst := sides[0], sides[1]
	// One Velero server at a time (each binds the same metrics port): the source's first.
	velero := func(sd side) *testbed.Velero {
		v, err := testbed.StartVelero(ctx, sd.c, t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() {
			v.Stop()
			if t.Failed() {
				t.Logf("velero log of the %s:\n%s", sd.name, testbed.LastLines(v.Log, 300))
			}
		})
		return v
	}
	srcVelero := velero(src)

	s := openStack(t, "backup", func(ctx *pulumi.Context) error {
		for _, sd := range sides {
			k8s, err := kubernetes.NewProvider(ctx, sd.name, &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(sd.c.Kubeconfig)})
			if err != nil {
				return err
			}
			args := &backup.VeleroArgs{Storage: backup.Storage{Bucket: "backups", Prefix: "velero/shop-prod", URL: s3URL, CredentialsSecret: "backup-credentials",
				ReadOnly: sd.name == "target"}}
			if sd.name == "target" { // its Velero starts for the migration (one server at a time here)
				args.Storage.WaitSeconds = -1
			}
			if sd.name == "source" {
				args.SnapshotLocations = []backup.SnapshotLocation{{Name: "ebs", Region: "ap-northeast-2"}}
				args.Schedules = []backup.Schedule{{Name: "shop-nightly", Cron: "0 1 * * *", Namespaces: []string{"shop"}, TTL: "720h", SnapshotLocations: []string{"ebs"},
					RPO: "25h", RTO: "10m"}}
				if _, err := backup.NewRestoreDrill(ctx, "drill", &backup.RestoreDrillArgs{Image: "registry.example.com/kplane-backup" + rules.Digest,
					Namespaces: []string{"shop"}, Bucket: "backups", Prefix: "velero/shop-prod", S3Endpoint: s3URL, CredentialsSecret: "drill-credentials",
					Resources: []string{"shop.example.com/widgets"}},
					pulumi.Provider(k8s)); err != nil {
					return err
				}
			}
			if _, err := backup.NewVelero(ctx, sd.name, args, pulumi.Provider(k8s)); err != nil {
				return err
			}
		}
		return nil
	}, nil, t.TempDir())
	_, err := s.Up(ctx)
	require.NoError(t, err)
	available := func(sd side) {
		require.Eventually(t, func() bool {
			bsl, err := sd.dyn.Resource(veleroBSLs).Namespace("velero").Get(ctx, "default", metav1.GetOptions{})
			if err != nil {
				return false
			}
			phase, _, _ := unstructured.NestedString(bsl.Object, "status", "phase")
			return phase == "Available"
		}, 60*time.Second, 500*time.Millisecond, "%s: the storage location is validated by Velero", sd.name)
	}
	available(src)
	sched, err := src.dyn.Resource(veleroSchedules).Namespace("velero").Get(ctx, "shop-nightly", metav1.GetOptions{})
	require.NoError(t, err)
	phase, _, _ := unstructured.NestedString(sched.Object, "status", "phase")
	assert.Equal(t, "Enabled", phase, "Velero accepted the schedule (and its snapshot location)")
	_, err = src.dyn.Resource(schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "volumesnapshotlocations"}).Namespace("velero").Get(ctx, "ebs", metav1.GetOptions{})
	require.NoError(t, err)

	// The shop.
	shop(t, ctx, src.cs, src.dyn)
	want, err := inventory.Take(ctx, src.cs.Discovery(), src.dyn, "shop")
	require.NoError(t, err)
	t.Logf("source inventory: %v", want.Kinds())
	require.Len(t, want, 7, "Deployment, Service, ConfigMap, Secret, ServiceAccount, RoleBinding, Widget: %v", want)

	create := func(dyn dynamic.Interface, gvr schema.GroupVersionResource, obj map[string]any, name string) map[string]any {
		_, err := dyn.Resource(gvr).Namespace("velero").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "velero.io/v1", "kind": obj["kind"], "metadata": map[string]any{"name": name}, "spec": obj["spec"]}}, metav1.CreateOptions{})
		require.NoError(t, err)
		var got *unstructured.Unstructured
		require.Eventually(t, func() bool {
			got, err = dyn.Resource(gvr).Namespace("velero").Get(ctx, name, metav1.GetOptions{})
			p, _, _ := unstructured.NestedString(got.Object, "status", "phase")
			return err == nil && (p == "Completed" || p == "PartiallyFailed" || p == "Failed" || p == "FailedValidation")
		}, 90*time.Second, 500*time.Millisecond, "%s %s finishes", obj["kind"], name)
		p, _, _ := unstructured.NestedString(got.Object, "status", "phase")
		require.Equal(t, "Completed", p, "%s %s: %v", obj["kind"], name, got.Object["status"])
		return got.Object
	}
	start := time.Now()
	b := create(src.dyn, veleroBackups, map[string]any{"kind": "Backup", "spec": map[string]any{"includedNamespaces": []any{"shop"}, "storageLocation": "default", "ttl": "720h"}}, "shop-1")
	t.Logf("backup: %.1f s, %v items", time.Since(start).Seconds(), b["status"].(map[string]any)["progress"])
	// As if the nightly schedule had made it (the drill measures the schedule's objectives).
	_, err = src.dyn.Resource(veleroBackups).Namespace("velero").Patch(ctx, "shop-1", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"velero.io/schedule-name":"shop-nightly"}}}`), metav1.PatchOptions{})
	require.NoError(t, err)

	// Restore into a mapped namespace on the same cluster.
	start = time.Now()
	create(src.dyn, veleroRestores, map[string]any{"kind": "Restore", "spec": map[string]any{"backupName": "shop-1", "namespaceMapping": map[string]any{"shop": "shop-restored"}}}, "shop-1-mapped")
	t.Logf("restore into shop-restored: %.1f s", time.Since(start).Seconds())
	got, err := inventory.Take(ctx, src.cs.Discovery(), src.dyn, "shop-restored")
	require.NoError(t, err)
	assert.Empty(t, inventory.Diff(want, got), "restored on the same cluster, every object and its data")

	// The restore drill: sealed at backup time, restored into a scratch namespace, judged by
	// the backup's own content; bad input refused before anything is restored.
	bucket, err := objstore.New(objstore.Bucket{Name: "backups", Prefix: "velero/shop-prod", Endpoint: s3URL, AccessKey: "kplane", SecretKey: "kplane-secret"})
	require.NoError(t, err)
	d := &drill.Drill{Discovery: src.cs.Discovery(), Dynamic: src.dyn, Bucket: bucket}
	seal, err := d.Seal(ctx, "shop-1")
	require.NoError(t, err)
	_, err = d.Run(ctx, "shop-0", "shop", "shop-drill")
	assert.ErrorContains(t, err, "backup shop-0: not found in namespace velero")
	_, err = d.Run(ctx, "shop-1", "warehouse", "shop-drill")
	assert.ErrorContains(t, err, `namespace "warehouse" is not in it (it holds [shop])`)
	_, err = d.Run(ctx, "shop-1", "shop", "shop-restored")
	assert.ErrorContains(t, err, "restore into shop-restored: the namespace has 7 objects; restore into a new or empty namespace")
	// The drill's command, as its CronJob runs it (the drill's ServiceAccount: its roles suffice):
	// the latest backup of the shop.
	drillCron, err := src.cs.BatchV1().CronJobs("velero").Get(ctx, "kplane-restore-drill-shop", metav1.GetOptions{})
	require.NoError(t, err)
	evidence := filepath.Join(t.TempDir(), "evidence.json")
	runDrill := func() (drill.Evidence, string, error) {
		cmd := exec.CommandContext(ctx, buildCommand(t, "github.com/kplane/kplane/cmd/kplane-backup"),
			append(drillCron.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args, "--kubeconfig="+serviceAccountKubeconfig(t, src.c, "velero", "kplane-restore-drill"),
				"--evidence="+evidence)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=kplane", "AWS_SECRET_ACCESS_KEY=kplane-secret")
		out, err := cmd.CombinedOutput()
		var ev drill.Evidence
		raw, rerr := os.ReadFile(evidence)
		require.NoError(t, rerr, "%s", out)
		require.NoError(t, json.Unmarshal(raw, &ev))
		return ev, string(out), err
	}
	ev, out, err := runDrill()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "shop-1", ev.Backup)
	assert.True(t, ev.Passed && ev.Sealed)
	assert.Equal(t, seal, ev.TarballSHA256)
	assert.Equal(t, map[string]int{"ConfigMap": 1, "Deployment.apps": 1, "RoleBinding.rbac.authorization.k8s.io": 1, "Secret": 1, "Service": 1,
		"ServiceAccount": 1, "Widget.shop.example.com": 1}, ev.Kinds)
	t.Logf("drill: RTO %.1f s, RPO %.1f s, tarball %s", ev.RTOSeconds, ev.RPOSeconds, ev.TarballSHA256[:12])
	assert.Equal(t, "shop-nightly", ev.Schedule)
	assert.Equal(t, []float64{25 * 3600, 600}, []float64{ev.RPOTargetSeconds, ev.RTOTargetSeconds}, "the schedule's objectives")
	assert.Empty(t, ev.Missed)
	assert.Less(t, ev.RPOSeconds, 600.0, "one backup minutes old: the schedule left minutes uncovered")
	drillKept(t, ctx, src.cs, bucket, ev, 1)
	// It removed what it restored; the scratch namespace and its access binding stay for the next drill.
	require.Eventually(t, func() bool {
		left, err := inventory.Take(ctx, src.cs.Discovery(), src.dyn, "shop-drill")
		return err == nil && len(left) == 1 && left["RoleBinding.rbac.authorization.k8s.io/"+drill.AccessBinding] == ""
	}, time.Minute, time.Second, "the drill empties its scratch namespace")
	// Its ServiceAccount reads nothing outside the scratch namespaces: not the shop's Secrets.
	saConfig, err := clientcmd.BuildConfigFromFlags("", serviceAccountKubeconfig(t, src.c, "velero", "kplane-restore-drill"))
	require.NoError(t, err)
	saClient, err := k8sclient.NewForConfig(saConfig)
	require.NoError(t, err)
	_, err = saClient.CoreV1().Secrets("shop").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "the drill may not read the shop's Secrets: %v", err)
	_, err = saClient.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "nor anything cluster-wide: %v", err)
	_, err = saClient.CoreV1().ConfigMaps("velero").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: drill.EvidenceConfigMap("web")}}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "it writes its own evidence ConfigMaps alone: %v", err)

	// An RTO no restore meets: the drill restores correctly, names the target it missed, fails,
	// and keeps that evidence too.
	_, err = src.dyn.Resource(veleroSchedules).Namespace("velero").Patch(ctx, "shop-nightly", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"kplane.io/rto":"1ms"}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	late, out, err := runDrill()
	require.Error(t, err, "a drill that misses its RTO fails its Job")
	assert.Contains(t, out, "restored as it was taken, but missed 1 targets: [RTO: the restore took")
	assert.True(t, late.Passed)
	require.Len(t, late.Missed, 1)
	assert.Contains(t, late.Missed[0], "more than the target 0s of schedule shop-nightly")
	drillKept(t, ctx, src.cs, bucket, late, 2)

	// Migrate to the other cluster: its Velero sees the source's backups (read-only location).
	srcVelero.Stop()
	velero(dst)
	available(dst)
	// The pre-check names what cannot move as the target is, before anything is restored.
	dd := &drill.Drill{Discovery: dst.cs.Discovery(), Dynamic: dst.dyn, Bucket: bucket}
	var blockers []string
	require.Eventually(t, func() bool { blockers, err = dd.Precheck(ctx, "shop-1", "shop"); return err == nil }, 120*time.Second, time.Second)
	assert.Equal(t, []string{
		`RoleBinding readers: cluster role "shop-reader" does not exist here (cluster-scoped: create it first)`,
		"Widget.shop.example.com: this cluster does not serve the kind (install its CRD first)"}, blockers)
	shopDependencies(t, ctx, dst.cs, dst.dyn)
	blockers, err = dd.Precheck(ctx, "shop-1", "shop")
	require.NoError(t, err)
	assert.Empty(t, blockers, "nothing blocks the migration once the target has them")

	start = time.Now()
	require.Eventually(t, func() bool {
		_, err := dst.dyn.Resource(veleroBackups).Namespace("velero").Get(ctx, "shop-1", metav1.GetOptions{})
		return err == nil
	}, 120*time.Second, time.Second, "the target's Velero syncs the backup from the shared location")
	t.Logf("the target saw the backup after %.0f s", time.Since(start).Seconds())
	start = time.Now()
	create(dst.dyn, veleroRestores, map[string]any{"kind": "Restore", "spec": map[string]any{"backupName": "shop-1"}}, "shop-1-migrated")
	t.Logf("migration restore: %.1f s", time.Since(start).Seconds())
	got, err = inventory.Take(ctx, dst.cs.Discovery(), dst.dyn, "shop")
	require.NoError(t, err)
	assert.Empty(t, inventory.Diff(want, got), "migrated, every object and its data")
	secret, err := dst.cs.CoreV1().Secrets("shop").Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "s3cret-2026", string(secret.Data["password"]))

	// A backup changed in the bucket after it was sealed: the drill refuses it, saying why.
	tamper(t, ctx, bucket, "backups/shop-1/shop-1.tar.gz", "resources/configmaps/namespaces/shop/prices.json", `"apple":"3"`, `"apple":"1"`)
	_, err = d.Run(ctx, "shop-1", "shop", "shop-drill")
	assert.ErrorContains(t, err, "backup shop-1: tampered: its tarball's SHA-256 is")
	assert.ErrorContains(t, err, "sealed "+seal)

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
}

// tamper rewrites one file of a backup tarball in the bucket, replacing old by new in it.
func tamper(t *testing.T, ctx context.Context, bucket *objstore.Store, key, file, old, new string) {
	t.Helper()
	body, _, err := bucket.Get(ctx, key)
	require.NoError(t, err)
	defer body.Close()
	zr, err := gzip.NewReader(body)
	require.NoError(t, err)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	changed := false
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		raw, err := io.ReadAll(tr)
		require.NoError(t, err)
		if strings.HasSuffix(hdr.Name, file) && bytes.Contains(raw, []byte(old)) {
			raw, changed = bytes.ReplaceAll(raw, []byte(old), []byte(new)), true
			hdr.Size = int64(len(raw))
		}
		require.NoError(t, tw.WriteHeader(hdr))
		_, err = tw.Write(raw)
		require.NoError(t, err)
	}
	require.True(t, changed, "%s holds %s", file, old)
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	path := filepath.Join(t.TempDir(), "tampered.tar.gz")
	require.NoError(t, os.WriteFile(path, out.Bytes(), 0o600))
	require.NoError(t, bucket.PutFile(ctx, key, path, nil))
}

// shopDependencies are what the shop needs outside its namespace: its custom resource type
// and the cluster role its readers are bound to.
func shopDependencies(t *testing.T, ctx context.Context, cs k8sclient.Interface, dyn dynamic.Interface) {
	t.Helper()
	_, err := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Create(ctx, widgetCRD(), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := dyn.Resource(widgets).Namespace("default").List(ctx, metav1.ListOptions{})
		return err == nil
	}, 30*time.Second, 200*time.Millisecond, "the Widget type is served")
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "shop-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"shop.example.com"}, Resources: []string{"widgets"}, Verbs: []string{"get", "list"}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// shop is the namespace the backup tests protect: a Deployment, its Service, a ConfigMap, a
// Secret and a custom resource.
func shop(t *testing.T, ctx context.Context, cs k8sclient.Interface, dyn dynamic.Interface) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	labels := map[string]string{"app": "web"}
	replicas := int32(2)
	_, err = cs.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/web" + rules.Digest}}}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Services("shop").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "prices"}, Data: map[string]string{"apple": "3", "pear": "4"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Secrets("shop").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": "s3cret-2026"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = dyn.Resource(widgets).Namespace("shop").Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "shop.example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "gizmo"}, "spec": map[string]any{"color": "teal", "size": int64(3)}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.RbacV1().RoleBindings("shop").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "readers"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "shop-reader"},
		Subjects: []rbacv1.Subject{{Kind: "Group", Name: "oidc:team-a", APIGroup: "rbac.authorization.k8s.io"}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// The ServiceAccount "default" is the cluster's; a workload's own is the shop's.
	_, err = cs.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func widgetCRD() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "widgets.shop.example.com"},
		"spec": map[string]any{"group": "shop.example.com", "scope": "Namespaced",
			"names": map[string]any{"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true, "schema": map[string]any{"openAPIV3Schema": map[string]any{
				"type": "object", "properties": map[string]any{"spec": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}}}}
}

// drillKept: ev is the latest evidence in its namespace's ConfigMap, and the n-th (the newest)
// kept in the bucket, beside the Velero location's prefix.
func drillKept(t *testing.T, ctx context.Context, cs k8sclient.Interface, bucket *objstore.Store, ev drill.Evidence, n int) {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps("velero").Get(ctx, drill.EvidenceConfigMap(ev.Namespace), metav1.GetOptions{})
	require.NoError(t, err)
	var kept drill.Evidence
	require.NoError(t, json.Unmarshal([]byte(cm.Data[drill.EvidenceKey]), &kept))
	assert.Equal(t, ev, kept, "the ConfigMap holds the latest evidence")
	at := bucket.B
	at.Prefix = drill.EvidencePrefix + strings.TrimSuffix(at.Prefix, "/")
	store, err := objstore.New(at)
	require.NoError(t, err)
	keys, err := store.List(ctx, ev.Namespace+"/")
	require.NoError(t, err)
	require.Len(t, keys, n, "one object per drill in the bucket")
	body, _, err := store.Get(ctx, keys[n-1])
	require.NoError(t, err)
	defer body.Close()
	require.NoError(t, json.NewDecoder(body).Decode(&kept))
	assert.Equal(t, ev, kept, "the bucket holds each drill's evidence")
}
