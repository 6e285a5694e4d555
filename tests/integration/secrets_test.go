package integration

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/tests/testbed"
)

// TestServiceSecrets: the SecretStore and ExternalSecrets kplane renders for a service are
// accepted field for field by the External Secrets Operator's own CRDs in a real API server.
func TestServiceSecrets(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	eso := "github.com/external-secrets/external-secrets@" + pinned(t, "EXTERNAL_SECRETS_VERSION")
	upstreamCRD(t, c, eso, "config/crds/bases/external-secrets.io_secretstores.yaml")
	upstreamCRD(t, c, eso, "config/crds/bases/external-secrets.io_externalsecrets.yaml")

	s := hardenedStack(t, c, "secrets-sync", &hardenedcluster.Args{
		Teams:    []hardenedcluster.Team{{Name: "pay", Namespaces: []string{"sec-payments"}}},
		Services: []hardenedcluster.Service{{Name: "ledger", Namespace: "sec-payments", Secrets: []hardenedcluster.ServiceSecret{{Name: "db"}}}},
		Secrets:  hardenedcluster.SecretsArgs{VaultAddress: "https://vault.example.com:8200", RefreshInterval: "15m"},
	}, nil)
	up, err := s.Up(context.Background())
	require.NoError(t, err)
	assert.Contains(t, up.Outputs["vaultPolicies"].Value.(map[string]any)["sec-payments-ledger"], `path "secret/data/sec-payments/ledger/*"`)

	dc, err := c.Dynamic()
	require.NoError(t, err)
	store := get(t, dc, schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "secretstores"}, "sec-payments", "kplane-vault-ledger")
	vault, _, _ := unstructured.NestedMap(store.Object, "spec", "provider", "vault")
	assert.Equal(t, map[string]any{
		"server": "https://vault.example.com:8200", "path": "secret", "version": "v2",
		"auth": map[string]any{"kubernetes": map[string]any{"mountPath": "kubernetes", "role": "sec-payments-ledger", "serviceAccountRef": map[string]any{"name": "ledger"}}},
	}, vault, "every field survives the upstream schema")
	es := get(t, dc, schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}, "sec-payments", "db")
	assert.Equal(t, "15m", str(es, "spec", "refreshInterval"))
	assert.Equal(t, "kplane-vault-ledger", str(es, "spec", "secretStoreRef", "name"))
	extract, _, _ := unstructured.NestedSlice(es.Object, "spec", "dataFrom")
	require.Len(t, extract, 1)
	assert.Equal(t, "sec-payments/ledger/db", extract[0].(map[string]any)["extract"].(map[string]any)["key"])

	_, err = s.Destroy(context.Background())
	require.NoError(t, err)
	noKplaneObjects(t, dc)
}
