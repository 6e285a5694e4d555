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
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/backup/csisnap"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/tests/testbed"
)

// TestCSISnapshots: the upstream snapshot CRDs (external-snapshotter v8.7.0) in a real API
// server; `pulumi up` of the component creates the class Velero uses and a policy's CronJob and
// least-privilege ServiceAccount; the CronJob's command, run with that ServiceAccount's token,
// snapshots only the selected claim and keeps its two newest ready snapshots (and a newer one
// not ready yet: a failing driver never costs a good snapshot).
func TestCSISnapshots(t *testing.T) {
	integration(t)
	ctx := context.Background()
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	const module = "github.com/kubernetes-csi/external-snapshotter/client/v8@v8.7.0"
	for _, crd := range []string{"volumesnapshotclasses", "volumesnapshots", "volumesnapshotcontents"} {
		upstreamCRD(t, c, module, "config/crd/snapshot.storage.k8s.io_"+crd+".yaml")
	}
	cs, err := c.Clientset()
	require.NoError(t, err)
	dyn, err := c.Dynamic()
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "data"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	for name, l := range map[string]map[string]string{"db": {"backup": "daily"}, "cache": nil} {
		_, err := cs.CoreV1().PersistentVolumeClaims("data").Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	policy := csisnap.Policy{Name: "daily", Namespace: "data", Selector: map[string]string{"backup": "daily"}, Class: "csi-snapshots", Keep: 2}
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
	class, err := dyn.Resource(schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotclasses"}).Get(ctx, "csi-snapshots", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "true", class.GetLabels()["velero.io/csi-volumesnapshot-class"], "Velero uses the class")
	assert.Equal(t, "Retain", class.Object["deletionPolicy"])
	cron, err := cs.BatchV1().CronJobs("data").Get(ctx, "kplane-snapshot-daily", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Contains(t, cron.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args, "--selector=backup=daily")

	// The CronJob's command as its ServiceAccount: the Role suffices, nothing more is needed.
	saKubeconfig := serviceAccountKubeconfig(t, c, "data", "kplane-snapshot-daily")
	bin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-backup")
	snaps := dyn.Resource(csisnap.VolumeSnapshots).Namespace("data")
	var all [][]string
	for run := range 4 {
		out, err := exec.CommandContext(ctx, bin, "snapshot", "--kubeconfig="+saKubeconfig, "--policy=daily", "--namespace=data", "--selector=backup=daily",
			"--class=csi-snapshots", "--keep=2").CombinedOutput()
		require.NoError(t, err, "run %d: %s", run, out)
		var res csisnap.Result
		require.NoError(t, json.Unmarshal(out, &res), "%s", out)
		require.Len(t, res.Created, 1, "only the selected claim")
		// The CSI snapshot controller would mark it ready (none runs here).
		snap, err := snaps.Get(ctx, res.Created[0], metav1.GetOptions{})
		require.NoError(t, err)
		require.NoError(t, unstructured.SetNestedField(snap.Object, true, "status", "readyToUse"))
		_, err = snaps.UpdateStatus(ctx, snap, metav1.UpdateOptions{})
		require.NoError(t, err)
		all = append(all, res.Created)
		time.Sleep(1100 * time.Millisecond) // names carry the second they were taken
	}
	list, err := snaps.List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var names []string
	for _, s := range list.Items {
		names = append(names, s.GetName())
		assert.Equal(t, "db", s.GetLabels()[wellknown.ClaimLabel])
	}
	slices.Sort(names)
	// Each run keeps the two newest ready snapshots and anything newer not ready yet (its own):
	// after four runs the first is gone, the next two and the newest stay.
	assert.Equal(t, []string{all[1][0], all[2][0], all[3][0]}, names, fmt.Sprint(all))
	_, err = exec.CommandContext(ctx, bin, "snapshot", "--kubeconfig="+saKubeconfig, "--policy=daily", "--namespace=data", "--keep=0").CombinedOutput()
	assert.Error(t, err, "keep 0 is refused")

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
}
