package backup

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/policies/pack"
)

var digest = "@sha256:" + strings.Repeat("a", 64)

func TestEtcdSnapshotsValidate(t *testing.T) {
	good := EtcdSnapshotsArgs{Image: "r/kplane-etcd-snapshot" + digest, Bucket: "b", CredentialsSecret: "s"}
	require.NoError(t, good.Validate())
	for _, c := range []struct {
		mutate func(*EtcdSnapshotsArgs)
		want   string
	}{
		{func(a *EtcdSnapshotsArgs) { a.Image = "r/kplane-etcd-snapshot:latest" }, "pin kplane-etcd-snapshot by digest"},
		{func(a *EtcdSnapshotsArgs) { a.Image = "r/kplane-etcd-snapshot@sha256:1" }, "pin kplane-etcd-snapshot by digest"}, // not a digest
		{func(a *EtcdSnapshotsArgs) { a.Bucket = "" }, "etcdSnapshots.bucket: required"},
		{func(a *EtcdSnapshotsArgs) { a.CredentialsSecret = "" }, "etcdSnapshots.credentialsSecret: required"},
		{func(a *EtcdSnapshotsArgs) { a.Keep = -1 }, "keep at least one"},
		{func(a *EtcdSnapshotsArgs) { a.Schedule = "hourly" }, "five cron fields"},
		{func(a *EtcdSnapshotsArgs) { a.Endpoint = "http://127.0.0.1:2379" }, "over TLS"},
		{func(a *EtcdSnapshotsArgs) { a.PKIDir = "pki" }, "absolute path"},
	} {
		a := good
		c.mutate(&a)
		assert.ErrorContains(t, a.Validate(), c.want)
	}
}

func TestEtcdSnapshotsGraph(t *testing.T) {
	m := &pack.Recorder{}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewEtcdSnapshots(ctx, "etcd", &EtcdSnapshotsArgs{Image: "r/kplane-etcd-snapshot" + digest, Bucket: "backups", CredentialsSecret: "etcd-backup",
			S3Endpoint: "https://s3.internal.example.com"})
		return err
	}, pulumi.WithMocks("kplane", "prod", m)))
	cj := m.Inputs()["kubernetes:batch/v1:CronJob etcd-schedule"]
	require.NotNil(t, cj)
	raw, err := json.Marshal(cj.Mappable())
	require.NoError(t, err)
	for _, want := range []string{`"schedule":"0 */6 * * *"`, `"concurrencyPolicy":"Forbid"`, `"--prefix=etcd/prod/"`, `"--keep=28"`,
		`"--s3-endpoint=https://s3.internal.example.com"`, `"hostNetwork":true`, `"readOnlyRootFilesystem":true`, `"drop":["ALL"]`,
		`"automountServiceAccountToken":false`, `{"key":"AWS_SECRET_ACCESS_KEY","name":"etcd-backup"}`, `"path":"/etc/kubernetes/pki"`} {
		assert.Contains(t, string(raw), want)
	}
}
