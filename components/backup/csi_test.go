package backup

import (
	"encoding/json"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/backup/csisnap"
	"github.com/kplane/kplane/policies/pack"
)

func TestCSISnapshotsValidate(t *testing.T) {
	policy := SnapshotPolicy{Policy: csisnap.Policy{Name: "db", Namespace: "shop", Keep: 7}, Schedule: "0 3 * * *"}
	good := CSISnapshotsArgs{Image: "r/kplane-backup" + digest, Class: &SnapshotClass{Name: "csi", Driver: "ebs.csi.aws.com"}, Policies: []SnapshotPolicy{policy}}
	require.NoError(t, good.Validate())
	for _, c := range []struct {
		mutate func(*CSISnapshotsArgs)
		want   string
	}{
		{func(a *CSISnapshotsArgs) { a.Class = nil }, "csiSnapshots.policies[0].class: required; a VolumeSnapshotClass with deletionPolicy Delete"},
		{func(a *CSISnapshotsArgs) { a.Policies[0].Class = "csi" }, "leave class empty for csi-scheduled (deletionPolicy Delete)"},
		{func(a *CSISnapshotsArgs) { a.Class.DeletionPolicy = "Keep" }, "Retain or Delete"},
		{func(a *CSISnapshotsArgs) { a.Image = "r/kplane-backup@sha256:1" }, "pin kplane-backup by digest"},
	} {
		a := good
		a.Class, a.Policies = &SnapshotClass{Name: "csi", Driver: "ebs.csi.aws.com"}, []SnapshotPolicy{policy}
		c.mutate(&a)
		assert.ErrorContains(t, a.Validate(), c.want)
	}
	own := good
	own.Class, own.Policies = nil, []SnapshotPolicy{policy}
	own.Policies[0].Class = "gold-delete"
	assert.NoError(t, own.Validate(), "a class of the team's own (checked when the job runs)")
}

// The scheduled snapshots get a Delete class of their own beside Velero's Retain class, and
// their ServiceAccounts may read that class and no other.
func TestCSISnapshotsGraph(t *testing.T) {
	m := &pack.Recorder{}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewCSISnapshots(ctx, "csi", &CSISnapshotsArgs{Image: "r/kplane-backup" + digest, Class: &SnapshotClass{Name: "csi", Driver: "ebs.csi.aws.com"},
			Policies: []SnapshotPolicy{{Policy: csisnap.Policy{Name: "db", Namespace: "shop", Keep: 7}, Schedule: "0 3 * * *"}}})
		return err
	}, pulumi.WithMocks("kplane", "prod", m)))
	in := m.Inputs()
	marshal := func(key string) string {
		require.Contains(t, in, key)
		raw, err := json.Marshal(in[key].Mappable())
		require.NoError(t, err)
		return string(raw)
	}
	velero := marshal("kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshotClass csi-class")
	assert.Contains(t, velero, `"deletionPolicy":"Retain"`)
	assert.Contains(t, velero, `"velero.io/csi-volumesnapshot-class":"true"`)
	scheduled := marshal("kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshotClass csi-scheduled-class")
	assert.Contains(t, scheduled, `"deletionPolicy":"Delete"`)
	assert.Contains(t, scheduled, `"name":"csi-scheduled"`)
	assert.NotContains(t, scheduled, "velero.io/csi-volumesnapshot-class", "Velero keeps to its own class")
	assert.Contains(t, marshal("kubernetes:batch/v1:CronJob csi-db"), `"--class=csi-scheduled"`)
	assert.Contains(t, marshal("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole csi-classes"), `"resourceNames":["csi-scheduled"],"resources":["volumesnapshotclasses"],"verbs":["get"]`)
}
