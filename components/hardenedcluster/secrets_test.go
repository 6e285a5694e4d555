package hardenedcluster

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func secretArgs() *Args {
	return &Args{
		Teams:    []Team{{Name: "pay", Namespaces: []string{"payments"}}},
		Services: []Service{{Name: "ledger", Namespace: "payments", Secrets: []ServiceSecret{{Name: "db"}, {Name: "api-key"}}}, {Name: "quiet", Namespace: "payments"}},
		Secrets:  SecretsArgs{VaultAddress: "https://vault.example.com:8200"},
	}
}

func TestSecretsValidate(t *testing.T) {
	cases := map[string]struct {
		mutate func(*Args)
		want   string
	}{
		"valid":       {func(a *Args) {}, ""},
		"no secrets":  {func(a *Args) { a.Services[0].Secrets = nil; a.Secrets = SecretsArgs{} }, ""},
		"no vault":    {func(a *Args) { a.Secrets.VaultAddress = "" }, `secrets.vaultAddress "": services declare secrets, so give Vault's https:// address`},
		"http":        {func(a *Args) { a.Secrets.VaultAddress = "http://vault:8200" }, "secrets never travel in clear text"},
		"bad refresh": {func(a *Args) { a.Secrets.RefreshInterval = "90d" }, `secrets.refreshInterval "90d": a duration between 1m and 24h`},
		"too slow":    {func(a *Args) { a.Secrets.RefreshInterval = "48h" }, "between 1m and 24h"},
		"duplicate":   {func(a *Args) { a.Services[0].Secrets = append(a.Services[0].Secrets, ServiceSecret{Name: "db"}) }, `services[0].secrets[2].name "db": a unique DNS-1123 label`},
		"bad mount":   {func(a *Args) { a.Secrets.KVMount = "/secret" }, `secrets.kvMount "/secret"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := secretArgs()
			tc.mutate(a)
			expectValidation(t, a, tc.want)
		})
	}
}

func TestSecretsGraphAndPolicies(t *testing.T) {
	rec, err := run(t, secretArgs())
	require.NoError(t, err)
	charts := rec.ofType("kubernetes:helm.sh/v4:Chart")
	require.Len(t, charts, 1, "the External Secrets Operator is installed")
	assert.Equal(t, ExternalSecretsChart.Version, charts[0].Inputs["version"].StringValue())
	assert.Equal(t, ExternalSecretsNamespace, charts[0].Inputs["namespace"].StringValue())
	external := secretArgs()
	external.Secrets.Operator.External = true
	rec2, err := run(t, external)
	require.NoError(t, err)
	assert.Empty(t, rec2.ofType("kubernetes:helm.sh/v4:Chart"), "an operator run by someone else is not installed")
	stores := rec.ofType("kubernetes:external-secrets.io/v1:SecretStore")
	require.Len(t, stores, 1, "one store per service with secrets")
	vault := stores[0].Inputs["spec"].ObjectValue()["provider"].ObjectValue()["vault"].ObjectValue()
	auth := vault["auth"].ObjectValue()["kubernetes"].ObjectValue()
	assert.Equal(t, "payments-ledger", auth["role"].StringValue())
	assert.Equal(t, "ledger", auth["serviceAccountRef"].ObjectValue()["name"].StringValue(), "logs in as the service itself")
	assert.Equal(t, "v2", vault["version"].StringValue())
	ess := rec.ofType("kubernetes:external-secrets.io/v1:ExternalSecret")
	require.Len(t, ess, 2)
	spec := byName(ess, "api-key").Inputs["spec"].ObjectValue() // registration order is not fixed
	assert.Equal(t, "1h", spec["refreshInterval"].StringValue())
	assert.Equal(t, "payments/ledger/api-key", spec["dataFrom"].ArrayValue()[0].ObjectValue()["extract"].ObjectValue()["key"].StringValue())

	assert.Equal(t, map[string]string{"payments-ledger": "# kplane: payments/ledger reads its own secrets only (CIS 5.4.2, ISMS-P 2.7.1)\n" +
		"path \"secret/data/payments/ledger/*\" {\n  capabilities = [\"read\"]\n}\n"}, secretArgs().VaultPolicies())
}

const vaultImage = "registry.example.com/kplane-vault@sha256:" + "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd"

func bootstrapArgs() *Args {
	a := secretArgs()
	a.Services[0].Secrets[0].Rotate = &Rotation{Keys: []string{"password"}, Schedule: "0 4 1 * *"}
	a.Secrets.Bootstrap = &VaultBootstrapArgs{Image: vaultImage, TokenSecret: "vault-admin", KubernetesHost: "https://api.example.com:6443"}
	return a
}

func TestVaultBootstrapValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Args)
		want   string
	}{
		"valid":              {func(a *Args) {}, ""},
		"rotate w/o boot":    {func(a *Args) { a.Secrets.Bootstrap = nil }, "services[0].secrets[0].rotate: rotation runs with the Vault bootstrap; set secrets.bootstrap"},
		"no keys":            {func(a *Args) { a.Services[0].Secrets[0].Rotate.Keys = nil }, "services[0].secrets[0].rotate.keys: required; list the keys"},
		"bad schedule":       {func(a *Args) { a.Services[0].Secrets[0].Rotate.Schedule = "monthly" }, `rotate.schedule "monthly"`},
		"short":              {func(a *Args) { a.Services[0].Secrets[0].Rotate.Length = 8 }, "rotate.length 8: between 16 and 128"},
		"image tag":          {func(a *Args) { a.Secrets.Bootstrap.Image = "registry.example.com/kplane-vault:1" }, "pin it by digest"},
		"no token secret":    {func(a *Args) { a.Secrets.Bootstrap.TokenSecret = "" }, `secrets.bootstrap.tokenSecret "": the name of a Secret in kplane-secrets`},
		"no kubernetes host": {func(a *Args) { a.Secrets.Bootstrap.KubernetesHost = "api:6443" }, `secrets.bootstrap.kubernetesHost "api:6443"`},
	} {
		t.Run(name, func(t *testing.T) {
			a := bootstrapArgs()
			tc.mutate(a)
			expectValidation(t, a, tc.want)
		})
	}
}

func TestVaultPlan(t *testing.T) {
	plan := bootstrapArgs().VaultPlan()
	assert.Equal(t, "kubernetes", plan.AuthPath)
	require.Len(t, plan.Roles, 2, "the service's role and the rotator's")
	assert.Equal(t, "payments-ledger", plan.Roles[0].Name)
	assert.Equal(t, "ledger", plan.Roles[0].ServiceAccount)
	assert.Equal(t, "payments", plan.Roles[0].Namespace)
	rotator := plan.Policies["kplane-secret-rotator"]
	assert.Contains(t, rotator, "path \"secret/data/payments/ledger/db\" {\n  capabilities = [\"create\", \"patch\"]\n}")
	assert.Contains(t, rotator, "path \"secret/metadata/payments/ledger/db\" {\n  capabilities = [\"read\"]\n}")
	assert.NotContains(t, rotator, "api-key", "only the rotated secret")
	assert.NotContains(t, rotator, `"read"]`+"\n}\npath \"secret/data", "the rotator cannot read values")
}

func TestVaultBootstrapGraph(t *testing.T) {
	rec, err := run(t, bootstrapArgs())
	require.NoError(t, err)
	jobs := rec.ofType("kubernetes:batch/v1:Job")
	require.Len(t, jobs, 1)
	pod := jobs[0].Inputs["spec"].ObjectValue()["template"].ObjectValue()["spec"].ObjectValue()
	assert.False(t, pod["automountServiceAccountToken"].BoolValue(), "the bootstrap needs no Kubernetes API access")
	env := pod["containers"].ArrayValue()[0].ObjectValue()["env"].ArrayValue()
	token := env[len(env)-1].ObjectValue()
	assert.Equal(t, "VAULT_TOKEN", token["name"].StringValue())
	assert.Equal(t, "vault-admin", token["valueFrom"].ObjectValue()["secretKeyRef"].ObjectValue()["name"].StringValue(), "the Vault token comes from a Secret, never from kplane's arguments")

	crons := rec.ofType("kubernetes:batch/v1:CronJob")
	require.Len(t, crons, 1, "one rotation per rotated secret")
	cron := crons[0].Inputs["spec"].ObjectValue()
	assert.Equal(t, "0 4 1 * *", cron["schedule"].StringValue())
	rpod := cron["jobTemplate"].ObjectValue()["spec"].ObjectValue()["template"].ObjectValue()["spec"].ObjectValue()
	assert.Equal(t, rotatorAccount, rpod["serviceAccountName"].StringValue())
	assert.Contains(t, strs(rpod["containers"].ArrayValue()[0].ObjectValue()["args"]), "--path=payments/ledger/db")

	binding := byName(rec.ofType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"), "kplane-vault-token-reviewer")
	assert.Equal(t, "system:auth-delegator", binding.Inputs["roleRef"].ObjectValue()["name"].StringValue())
	plan := byName(rec.ofType("kubernetes:core/v1:ConfigMap"), "kplane-vault-plan")
	assert.Contains(t, plan.Inputs["data"].ObjectValue()["plan.json"].StringValue(), `"kubernetesHost": "https://api.example.com:6443"`)

	ns := byName(rec.ofType(vapType), "kplane-allowed-namespaces")
	assert.Contains(t, ns.Inputs["spec"].ObjectValue()["validations"].ArrayValue()[0].ObjectValue()["expression"].StringValue(), "'kplane-secrets'", "kplane's Vault jobs may run in their namespace")
}
