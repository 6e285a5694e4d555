package backup

import (
	"encoding/json"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/policies/pack"
)

func TestVeleroValidate(t *testing.T) {
	good := VeleroArgs{Storage: Storage{Bucket: "b", CredentialsSecret: "s"},
		Schedules: []Schedule{{Name: "nightly", Cron: "0 1 * * *", Namespaces: []string{"*"}, TTL: "720h", RPO: "25h", RTO: "30m"}}}
	require.NoError(t, good.Validate())
	for _, c := range []struct {
		mutate func(*VeleroArgs)
		want   string
	}{
		{func(a *VeleroArgs) { a.Storage.Bucket = "" }, "storage.bucket: required"},
		{func(a *VeleroArgs) { a.Storage.CredentialsSecret = "" }, "storage.credentialsSecret: required"},
		{func(a *VeleroArgs) { a.Storage.URL = "minio:9000" }, "storage.url"},
		{func(a *VeleroArgs) { a.Schedules[0].TTL = "" }, "ttl \"\": how long backups are kept"},
		{func(a *VeleroArgs) { a.Schedules[0].TTL = "30d" }, "ttl \"30d\""},
		{func(a *VeleroArgs) { a.Schedules[0].Cron = "@daily" }, "five fields"},
		{func(a *VeleroArgs) { a.Schedules[0].Namespaces = nil }, "namespaces: required; at least one"},
		{func(a *VeleroArgs) { a.Schedules = append(a.Schedules, a.Schedules[0]) }, "unique"},
		{func(a *VeleroArgs) { a.Schedules[0].RPO = "1d" }, `schedules[0].rpo "1d": a positive duration, e.g. 25h or 30m`},
		{func(a *VeleroArgs) { a.Schedules[0].RTO = "-5m" }, `schedules[0].rto "-5m": a positive duration`},
		{func(a *VeleroArgs) { a.Schedules[0].RPO = "12h" }, `schedules[0].rpo "12h": the cron "0 1 * * *" runs as far as 24h0m0s apart, so it can never meet this RPO`},
		{func(a *VeleroArgs) { a.SnapshotLocations = []SnapshotLocation{{Name: "ebs"}} }, "snapshotLocations[0].region: required for aws"},
		{func(a *VeleroArgs) { a.Schedules[0].SnapshotLocations = []string{"ebs"} }, `schedules[0].snapshotLocations[0] "ebs": not one of snapshotLocations`},
		{func(a *VeleroArgs) {
			a.Install = &VeleroInstall{Image: "velero/velero:v1.18.3", PluginImage: "p" + digest}
		}, `install.image "velero/velero:v1.18.3": pin it by digest`},
		{func(a *VeleroArgs) {
			a.Install = &VeleroInstall{Image: "velero/velero" + digest, PluginImage: "velero/velero-plugin-for-aws" + digest, ClientQPS: -1}
		}, `install.clientQPS -1: requests per second to the API server, more than 0 (default 200)`},
		{func(a *VeleroArgs) {
			a.Install = &VeleroInstall{Image: "velero/velero" + digest, PluginImage: "velero/velero-plugin-for-aws" + digest, ClientQPS: 50, ClientBurst: 10}
		}, `install.clientBurst 10: at least clientQPS (50)`},
	} {
		a := good
		a.Schedules = append([]Schedule{}, good.Schedules...)
		c.mutate(&a)
		assert.ErrorContains(t, a.Validate(), c.want)
	}
}

func TestVeleroGraph(t *testing.T) {
	m := &pack.Recorder{}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewVelero(ctx, "backup", &VeleroArgs{Install: &VeleroInstall{Image: "velero/velero" + digest, PluginImage: "velero/velero-plugin-for-aws" + digest},
			Storage:           Storage{Bucket: "backups", URL: "https://s3.internal.example.com", CACert: "-----BEGIN CERTIFICATE-----", CredentialsSecret: "cloud"},
			SnapshotLocations: []SnapshotLocation{{Name: "ebs", Region: "ap-northeast-2"}},
			Schedules: []Schedule{{Name: "all", Cron: "0 2 * * *", Namespaces: []string{"*"}, TTL: "2160h", SnapshotLocations: []string{"ebs"}},
				{Name: "files", Cron: "0 3 * * *", Namespaces: []string{"legacy"}, TTL: "720h", FileSystemBackup: true, RPO: "26h", RTO: "45m"}}})
		return err
	}, pulumi.WithMocks("kplane", "prod", m)))
	bsl, err := json.Marshal(m.Inputs()["kubernetes:velero.io/v1:BackupStorageLocation backup-location"].Mappable())
	require.NoError(t, err)
	for _, want := range []string{`"prefix":"velero/prod"`, `"s3Url":"https://s3.internal.example.com"`, `"s3ForcePathStyle":"true"`, `"accessMode":"ReadWrite"`,
		`"credential":{"key":"cloud","name":"cloud"}`, `"caCert":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"`,
		`"pulumi.com/waitFor":"jsonpath={.status.phase}=Available"`, `"pulumi.com/timeoutSeconds":"300"`} {
		assert.Contains(t, string(bsl), want)
	}
	sched, err := json.Marshal(m.Inputs()["kubernetes:velero.io/v1:Schedule backup-schedule-all"].Mappable())
	require.NoError(t, err)
	assert.Contains(t, string(sched), `"ttl":"2160h"`)
	assert.Contains(t, string(sched), `"storageLocation":"default"`)
	assert.Contains(t, string(sched), `"volumeSnapshotLocations":["ebs"]`)
	assert.Contains(t, string(sched), `"annotations":{}`, "no objectives: the drill and the fleet use the cron's")
	files, err := json.Marshal(m.Inputs()["kubernetes:velero.io/v1:Schedule backup-schedule-files"].Mappable())
	require.NoError(t, err)
	assert.Contains(t, string(files), `"annotations":{"kplane.io/rpo":"26h","kplane.io/rto":"45m"}`)
	vsl, err := json.Marshal(m.Inputs()["kubernetes:velero.io/v1:VolumeSnapshotLocation backup-snapshot-location-ebs"].Mappable())
	require.NoError(t, err)
	assert.Contains(t, string(vsl), `"spec":{"config":{"region":"ap-northeast-2"},"credential":{"key":"cloud","name":"cloud"},"provider":"aws"}`)
	values, err := json.Marshal(m.Inputs()["kubernetes:helm.sh/v4:Chart backup-velero"].Mappable())
	require.NoError(t, err)
	for _, want := range []string{`"version":"12.1.0"`, `"backupsEnabled":false`, `"existingSecret":"cloud"`, `"upgradeCRDs":false`, `"readOnlyRootFilesystem":true`, `"deployNodeAgent":true`,
		`"initContainers":[{"image":"velero/velero-plugin-for-aws@sha256:`, `"securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true}`} {
		assert.Contains(t, string(values), want)
	}
	assert.NotContains(t, string(values), "EnableCSI", "no CSI feature unless asked: without the snapshot CRDs every backup would end PartiallyFailed")
	assert.Contains(t, string(values), `"clientBurst":400,"clientQPS":"200"`, "kplane's client rate, not Velero's 20 QPS")
}

// TestVeleroCSIFeature: Velero's CSI snapshots only when asked (the composed platform asks with
// csiSnapshots).
func TestVeleroCSIFeature(t *testing.T) {
	a := VeleroArgs{Install: &VeleroInstall{Image: "velero/velero" + digest, PluginImage: "velero/velero-plugin-for-aws" + digest}}
	assert.NotContains(t, a.chartValues()["configuration"], "features")
	a.CSI = true
	assert.Equal(t, "EnableCSI", a.chartValues()["configuration"].(map[string]any)["features"])
}

// TestVeleroClientRate: kplane's defaults, and a burst that follows a higher rate when not given.
func TestVeleroClientRate(t *testing.T) {
	in := VeleroInstall{}
	qps, burst := in.clientRate()
	assert.Equal(t, 200.0, qps)
	assert.Equal(t, 400, burst)
	in.ClientQPS = 500
	qps, burst = in.clientRate()
	assert.Equal(t, 500.0, qps)
	assert.Equal(t, 500, burst, "at least the rate")
	a := VeleroArgs{Storage: Storage{Bucket: "b", CredentialsSecret: "s"}, Install: &VeleroInstall{Image: "velero/velero" + digest, PluginImage: "velero/velero-plugin-for-aws" + digest, ClientQPS: 500}}
	require.NoError(t, a.Validate())
	assert.Equal(t, "500", a.chartValues()["configuration"].(map[string]any)["clientQPS"])
}
