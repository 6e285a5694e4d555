package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/tests/testbed"
)

// esoChart makes, from the operator's source tree, what its release packaging makes: the chart
// with the CRDs (generated into it at packaging time; here into crds/ from config/crds/bases),
// and without the optional, disabled bitwarden-sdk-server subchart the published archive bundles
// (helm refuses a declared dependency missing from charts/).
func esoChart(t *testing.T, module string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "external-secrets")
	require.NoError(t, exec.Command("cp", "-r", filepath.Join(module, "deploy/charts/external-secrets"), dst).Run())
	require.NoError(t, exec.Command("chmod", "-R", "u+w", dst).Run())
	require.NoError(t, exec.Command("cp", "-r", filepath.Join(module, "config/crds/bases"), filepath.Join(dst, "crds")).Run())
	require.NoError(t, os.Remove(filepath.Join(dst, "crds", "kustomization.yaml")))
	require.NoError(t, exec.Command("chmod", "-R", "u+w", dst).Run())
	raw, err := os.ReadFile(filepath.Join(dst, "Chart.yaml"))
	require.NoError(t, err)
	head, _, found := strings.Cut(string(raw), "\ndependencies:")
	require.True(t, found, "the chart declares its dependencies")
	require.NoError(t, os.WriteFile(filepath.Join(dst, "Chart.yaml"), []byte(head+"\n"), 0o644))
	require.NoError(t, os.Remove(filepath.Join(dst, "Chart.lock")))
	return dst
}

// TestServiceSecrets: the component installs the External Secrets Operator from its official
// chart (here from the Go module of the pinned release; its webhook and certificate controller
// off, as nothing would serve them on the test bed), and the SecretStore and ExternalSecrets it
// renders for a service are accepted field for field by the chart's CRDs in a real API server.
func TestServiceSecrets(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	eso := "github.com/external-secrets/external-secrets@" + pinned(t, "EXTERNAL_SECRETS_VERSION")

	s := hardenedStack(t, c, "secrets-sync", &hardenedcluster.Args{
		Teams:    []hardenedcluster.Team{{Name: "pay", Namespaces: []string{"sec-payments"}}},
		Services: []hardenedcluster.Service{{Name: "ledger", Namespace: "sec-payments", Secrets: []hardenedcluster.ServiceSecret{{Name: "db"}}}},
		Secrets: hardenedcluster.SecretsArgs{VaultAddress: "https://vault.example.com:8200", RefreshInterval: "15m", Operator: hardenedcluster.OperatorArgs{
			Chart:  addon.Chart{Path: esoChart(t, moduleDir(t, eso))},
			Values: map[string]any{"webhook": map[string]any{"create": false}, "certController": map[string]any{"create": false}},
		}},
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
