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
	"github.com/kplane/kplane/tests/testbed/pki"
)

// TestImageTrustPolicy: the ClusterImagePolicy kplane renders is accepted by sigstore
// policy-controller's own CRD schema in a real API server, field for field.
func TestImageTrustPolicy(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	upstreamCRD(t, c, "github.com/sigstore/policy-controller@"+pinned(t, "POLICY_CONTROLLER_VERSION"), "config/300-clusterimagepolicy.yaml")

	pub := pki.CosignPublicKey(t)

	s := hardenedStack(t, c, "imagetrust", &hardenedcluster.Args{
		Teams:      []hardenedcluster.Team{{Name: "web", Namespaces: []string{"trust-web"}}},
		Admission:  hardenedcluster.AdmissionArgs{AllowedRegistries: []string{"registry.example.com/"}},
		ImageTrust: hardenedcluster.ImageTrustArgs{Keys: []hardenedcluster.SigningKey{{Name: "release", PublicKey: pub}}, MaxSeverity: "HIGH"},
	}, nil)
	_, err := s.Up(context.Background())
	require.NoError(t, err)

	dc, err := c.Dynamic()
	require.NoError(t, err)
	cip := get(t, dc, schema.GroupVersionResource{Group: "policy.sigstore.dev", Version: "v1beta1", Resource: "clusterimagepolicies"}, "", "kplane-signed-images")
	spec, _, _ := unstructured.NestedMap(cip.Object, "spec")
	authorities, _, _ := unstructured.NestedSlice(spec, "authorities")
	require.Len(t, authorities, 1)
	attestations := authorities[0].(map[string]any)["attestations"].([]any)
	require.Len(t, attestations, 1, "the vulnerability scan attestation is required")
	policy := attestations[0].(map[string]any)["policy"].(map[string]any)
	assert.Equal(t, "rego", policy["type"])
	assert.Contains(t, policy["data"], "ranks[v.Severity] >= 3", "the HIGH limit")
	delete(authorities[0].(map[string]any), "attestations")
	spec["authorities"] = authorities
	assert.Equal(t, map[string]any{
		"images":      []any{map[string]any{"glob": "registry.example.com/**"}},
		"authorities": []any{map[string]any{"name": "release", "key": map[string]any{"data": pub, "hashAlgorithm": "sha256"}}},
		"mode":        "enforce",
	}, spec, "every field survives the upstream schema (unknown fields would be pruned)")
	assert.Equal(t, "vuln", attestations[0].(map[string]any)["predicateType"])
	assert.Equal(t, "true", get(t, dc, gvrNamespace, "", "trust-web").GetLabels()["policy.sigstore.dev/include"])

	_, err = s.Destroy(context.Background())
	require.NoError(t, err)
	noKplaneObjects(t, dc)
}
