package backup

import (
	"encoding/json"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/policies/pack"
)

// TestRestoreDrillGraph: per namespace a CronJob that measures the RPO over the drill's own
// interval, and the ConfigMap its evidence goes to; the account may update those ConfigMaps
// alone and read the Schedules' objectives.
func TestRestoreDrillGraph(t *testing.T) {
	m := &pack.Recorder{}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewRestoreDrill(ctx, "drill", &RestoreDrillArgs{Image: "registry.example.com/kplane-backup" + digest, Schedule: "0 4 * * *",
			Namespaces: []string{"shop", "web"}, Bucket: "backups", Prefix: "velero/prod", CredentialsSecret: "drill-s3"})
		return err
	}, pulumi.WithMocks("kplane", "prod", m)))
	js := func(key string) string {
		raw, err := json.Marshal(m.Inputs()[key].Mappable())
		require.NoError(t, err, key)
		return string(raw)
	}
	assert.Contains(t, js("kubernetes:batch/v1:CronJob drill-shop"), `"--window=24h0m0s"`, "the RPO is measured over the drill's interval")
	cm := js("kubernetes:core/v1:ConfigMap drill-kplane-restore-drill-web")
	for _, want := range []string{`"name":"kplane-restore-drill-web"`, `"namespace":"velero"`, `"kplane.io/drill-of":"web"`, `"kplane.io/drill-schedule":"0 4 * * *"`} {
		assert.Contains(t, cm, want)
	}
	assert.NotContains(t, cm, `"data"`, "the drill writes the data")
	role := js("kubernetes:rbac.authorization.k8s.io/v1:Role drill")
	assert.Contains(t, role, `{"apiGroups":[""],"resourceNames":["kplane-restore-drill-shop","kplane-restore-drill-web"],"resources":["configmaps"],"verbs":["get","update"]}`)
	assert.Contains(t, role, `{"apiGroups":["velero.io"],"resources":["schedules"],"verbs":["get"]}`)
}

// TestRestoreDrillValidate: a schedule that is no cron is refused by name.
func TestRestoreDrillValidate(t *testing.T) {
	a := RestoreDrillArgs{Image: "registry.example.com/kplane-backup" + digest, Schedule: "a b c d e", Namespaces: []string{"shop"}, Bucket: "b", Prefix: "p", CredentialsSecret: "s"}
	assert.ErrorContains(t, a.Validate(), `restoreDrill.schedule "a b c d e": five cron fields`)
	a.Schedule = "0 4 * * 0"
	assert.NoError(t, a.Validate())
}
