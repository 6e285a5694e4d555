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
		"no vault":    {func(a *Args) { a.Secrets.VaultAddress = "" }, `Secrets.VaultAddress "": services declare secrets, so give Vault's https:// address`},
		"http":        {func(a *Args) { a.Secrets.VaultAddress = "http://vault:8200" }, "secrets never travel in clear text"},
		"bad refresh": {func(a *Args) { a.Secrets.RefreshInterval = "90d" }, `Secrets.RefreshInterval "90d": a duration between 1m and 24h`},
		"too slow":    {func(a *Args) { a.Secrets.RefreshInterval = "48h" }, "between 1m and 24h"},
		"duplicate":   {func(a *Args) { a.Services[0].Secrets = append(a.Services[0].Secrets, ServiceSecret{Name: "db"}) }, `Services[0].Secrets[2].Name "db": a unique DNS-1123 label`},
		"bad mount":   {func(a *Args) { a.Secrets.KVMount = "/secret" }, `Secrets.KVMount "/secret"`},
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
