package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/backup/csisnap"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/tests/testbed"
)

var gvrSnapshotContents = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotcontents"}

// TestCSISnapshots: the upstream snapshot CRDs and the real CSI snapshot controller
// (external-snapshotter) on a real API server, with a claim bound to a CSI volume. `pulumi up`
// of the component creates Velero's class (Retain), the scheduled snapshots' class (Delete), a
// policy's CronJob and least-privilege ServiceAccount. The CronJob's command, run with that
// ServiceAccount's token, snapshots only the selected claim and keeps its two newest ready
// snapshots (and a newer one not ready yet); the controller deletes a pruned snapshot's content,
// which is what frees the storage's snapshot (the driver's sidecar deletes it with the content),
// where a snapshot of Velero's Retain class leaves its content behind. A class that would keep
// pruned storage is refused, and the ServiceAccount reads no class but its own.
func TestCSISnapshots(t *testing.T) {
	integration(t)
	ctx := context.Background()
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	module := "github.com/kubernetes-csi/external-snapshotter/client/v8@" + pinned(t, "EXTERNAL_SNAPSHOTTER_VERSION")
	for _, crd := range []string{"volumesnapshotclasses", "volumesnapshots", "volumesnapshotcontents"} {
		upstreamCRD(t, c, module, "config/crd/snapshot.storage.k8s.io_"+crd+".yaml")
	}
	testbed.StartSnapshotController(t, c)
	dyn, err := c.Dynamic()
	require.NoError(t, err)
	csiClaims(t, ctx, c)
	policy := csisnap.Policy{Name: "daily", Namespace: "data", Selector: map[string]string{"backup": "daily"}, Keep: 2}
	s := openStack(t, "csi-snapshots", func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		_, err = backup.NewCSISnapshots(ctx, "snap", &backup.CSISnapshotsArgs{Image: "registry.example.com/kplane-backup" + rules.Digest,
			Class:    &backup.SnapshotClass{Name: "csi-snapshots", Driver: "ebs.csi.aws.com"},
			Policies: []backup.SnapshotPolicy{{Policy: policy, Schedule: "30 2 * * *"}}}, pulumi.Provider(k8s))
		return err
	}, nil, t.TempDir())
	_, err = s.Up(ctx)
	require.NoError(t, err)
	classes := dyn.Resource(csisnap.VolumeSnapshotClasses)
	velero, err := classes.Get(ctx, "csi-snapshots", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "true", velero.GetLabels()["velero.io/csi-volumesnapshot-class"], "Velero uses the class")
	assert.Equal(t, "Retain", velero.Object["deletionPolicy"])
	scheduled, err := classes.Get(ctx, "csi-snapshots-scheduled", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "Delete", scheduled.Object["deletionPolicy"])
	cron, err := get(t, dyn, schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, "data", "kplane-snapshot-daily").MarshalJSON()
	require.NoError(t, err)
	assert.Contains(t, string(cron), `"--selector=backup=daily"`)
	assert.Contains(t, string(cron), `"--class=csi-snapshots-scheduled"`)

	// The CronJob's command as its ServiceAccount: the Role suffices, nothing more is needed.
	saKubeconfig := serviceAccountKubeconfig(t, c, "data", "kplane-snapshot-daily")
	bin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-backup")
	snapshot := func(kubeconfig, class string) (csisnap.Result, error) {
		out, err := exec.CommandContext(ctx, bin, "snapshot", "--kubeconfig="+kubeconfig, "--policy=daily", "--namespace=data", "--selector=backup=daily",
			"--class="+class, "--keep=2").CombinedOutput()
		if err != nil {
			return csisnap.Result{}, fmt.Errorf("%w: %s", err, out)
		}
		var res csisnap.Result
		return res, json.Unmarshal(out, &res)
	}
	snaps := dyn.Resource(csisnap.VolumeSnapshots).Namespace("data")
	var all []string
	contents := map[string]string{}
	for run := range 4 {
		res, err := snapshot(saKubeconfig, "csi-snapshots-scheduled")
		require.NoError(t, err, "run %d", run)
		require.Len(t, res.Created, 1, "only the selected claim")
		all = append(all, res.Created[0])
		contents[res.Created[0]] = snapshotTaken(t, ctx, dyn, res.Created[0])
		time.Sleep(1100 * time.Millisecond) // names carry the second they were taken
	}
	// Each run keeps the two newest ready snapshots and anything newer not ready yet (its own):
	// after four runs the first is pruned. The controller then marks its content for deletion,
	// the cue for the driver's sidecar to delete the storage's snapshot and let the content go.
	pruned := contents[all[0]]
	require.Eventually(t, func() bool {
		c, err := dyn.Resource(gvrSnapshotContents).Get(ctx, pruned, metav1.GetOptions{})
		return err == nil && c.GetDeletionTimestamp() != nil && c.GetAnnotations()["snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"] == "yes"
	}, 30*time.Second, 200*time.Millisecond, "the pruned snapshot's content is deleted with it (Delete): the storage's snapshot is freed")
	storageSnapshotDeleted(t, ctx, dyn, pruned)
	require.Eventually(t, func() bool {
		list, err := snaps.List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		var names []string
		for _, s := range list.Items {
			names = append(names, s.GetName())
			assert.Equal(t, "db", s.GetLabels()[wellknown.ClaimLabel])
		}
		slices.Sort(names)
		_, err = dyn.Resource(gvrSnapshotContents).Get(ctx, pruned, metav1.GetOptions{})
		return slices.Equal([]string{all[1], all[2], all[3]}, names) && apierrors.IsNotFound(err)
	}, 30*time.Second, 200*time.Millisecond, "the next two and the newest stay: %v", all)
	for _, kept := range all[1:] {
		content, err := dyn.Resource(gvrSnapshotContents).Get(ctx, contents[kept], metav1.GetOptions{})
		require.NoError(t, err, "a kept snapshot keeps its content")
		assert.Equal(t, "Delete", str(content, "spec", "deletionPolicy"))
	}
	retainedStaysBehind(t, ctx, dyn)

	_, err = snapshot(c.Kubeconfig, "csi-snapshots")
	assert.ErrorContains(t, err, "class csi-snapshots has deletionPolicy Retain: a pruned snapshot would keep its storage", "Velero's class is refused for schedules")
	_, err = snapshot(saKubeconfig, "csi-snapshots")
	assert.ErrorContains(t, err, "forbidden", "the ServiceAccount reads its own class only")
	_, err = exec.CommandContext(ctx, bin, "snapshot", "--kubeconfig="+saKubeconfig, "--policy=daily", "--namespace=data", "--keep=0").CombinedOutput()
	assert.Error(t, err, "keep 0 is refused")

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
}

// csiClaims: in namespace data, the claim db (selected by the policy) bound to a CSI volume of
// ebs.csi.aws.com, and the claim cache (not selected).
func csiClaims(t *testing.T, ctx context.Context, c *testbed.Cluster) {
	cs, err := c.Clientset()
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "data"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	size := corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
	rwo := []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	_, err = cs.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-db"},
		Spec: corev1.PersistentVolumeSpec{Capacity: size, AccessModes: rwo, ClaimRef: &corev1.ObjectReference{Namespace: "data", Name: "db"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "ebs.csi.aws.com", VolumeHandle: "vol-db"}}}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	empty := ""
	for name, l := range map[string]map[string]string{"db": {"backup": "daily"}, "cache": nil} {
		spec := corev1.PersistentVolumeClaimSpec{AccessModes: rwo, StorageClassName: &empty, Resources: corev1.VolumeResourceRequirements{Requests: size}}
		if name == "db" {
			spec.VolumeName = "pv-db"
		}
		_, err := cs.CoreV1().PersistentVolumeClaims("data").Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}, Spec: spec}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		pvc, err := cs.CoreV1().PersistentVolumeClaims("data").Get(ctx, "db", metav1.GetOptions{})
		return err == nil && pvc.Status.Phase == corev1.ClaimBound
	}, 30*time.Second, 200*time.Millisecond, "the claim binds to its CSI volume")
}

// snapshotTaken plays the CSI driver's snapshotter sidecar for a snapshot: once the controller
// has made and bound its content, the content reports a ready snapshot of the storage, which the
// controller carries to the VolumeSnapshot. It returns the content's name.
func snapshotTaken(t *testing.T, ctx context.Context, dyn dynamic.Interface, name string) string {
	snaps := dyn.Resource(csisnap.VolumeSnapshots).Namespace("data")
	var content string
	require.Eventually(t, func() bool {
		s, err := snaps.Get(ctx, name, metav1.GetOptions{})
		content = str(s, "status", "boundVolumeSnapshotContentName")
		return err == nil && content != ""
	}, 30*time.Second, 100*time.Millisecond, "the controller binds %s to a content it made", name)
	obj, err := dyn.Resource(gvrSnapshotContents).Get(ctx, content, metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, unstructured.SetNestedMap(obj.Object, map[string]any{"readyToUse": true, "snapshotHandle": "snap-" + name,
		"creationTime": time.Now().UnixNano(), "restoreSize": int64(1 << 30)}, "status"))
	_, err = dyn.Resource(gvrSnapshotContents).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s, err := snaps.Get(ctx, name, metav1.GetOptions{})
		ready, _, _ := unstructured.NestedBool(s.Object, "status", "readyToUse")
		return err == nil && ready
	}, 30*time.Second, 100*time.Millisecond, "the controller reports %s ready", name)
	return content
}

// storageSnapshotDeleted plays the sidecar for a content marked for deletion: it would delete
// the storage's snapshot (DeleteSnapshot to the driver), then drop the content's finalizer.
func storageSnapshotDeleted(t *testing.T, ctx context.Context, dyn dynamic.Interface, content string) {
	c, err := dyn.Resource(gvrSnapshotContents).Get(ctx, content, metav1.GetOptions{})
	require.NoError(t, err)
	c.SetFinalizers(nil)
	_, err = dyn.Resource(gvrSnapshotContents).Update(ctx, c, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// retainedStaysBehind: a snapshot of Velero's class (Retain), deleted, leaves its content and so
// the storage's snapshot: why the scheduled snapshots have a class of their own.
func retainedStaysBehind(t *testing.T, ctx context.Context, dyn dynamic.Interface) {
	snaps := dyn.Resource(csisnap.VolumeSnapshots).Namespace("data")
	_, err := snaps.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
		"metadata": map[string]any{"name": "velero-db"},
		"spec":     map[string]any{"volumeSnapshotClassName": "csi-snapshots", "source": map[string]any{"persistentVolumeClaimName": "db"}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	content := snapshotTaken(t, ctx, dyn, "velero-db")
	require.NoError(t, snaps.Delete(ctx, "velero-db", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		_, err := snaps.Get(ctx, "velero-db", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 30*time.Second, 200*time.Millisecond)
	kept, err := dyn.Resource(gvrSnapshotContents).Get(ctx, content, metav1.GetOptions{})
	require.NoError(t, err, "Retain: the content outlives its snapshot")
	assert.Nil(t, kept.GetDeletionTimestamp(), "Retain: the sidecar is never asked to delete the storage's snapshot")
}
