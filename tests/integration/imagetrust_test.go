package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

// pinned reads a version from tools/versions.sh.
func pinned(t *testing.T, key string) string {
	f, err := os.Open("../../tools/versions.sh")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return strings.Fields(v)[0]
		}
	}
	t.Fatalf("%s not in tools/versions.sh", key)
	return ""
}

// upstreamCRD installs a CRD shipped in a Go module and waits until it is Established. A
// conversion webhook is replaced by strategy None: its server (the upstream controller) cannot
// run here; the schemas, which are what is being tested, stay exactly upstream's.
func upstreamCRD(t *testing.T, c *testbed.Cluster, module, path string) {
	raw, err := os.ReadFile(filepath.Join(moduleDir(t, module), path))
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(raw)
	require.NoError(t, err)
	obj := &unstructured.Unstructured{}
	require.NoError(t, obj.UnmarshalJSON(js))
	if strategy, _, _ := unstructured.NestedString(obj.Object, "spec", "conversion", "strategy"); strategy == "Webhook" {
		require.NoError(t, unstructured.SetNestedMap(obj.Object, map[string]any{"strategy": "None"}, "spec", "conversion"))
	}
	dc, err := c.Dynamic()
	require.NoError(t, err)
	_, err = dc.Resource(gvrCRD).Create(context.Background(), obj, k8smeta.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return established(get(t, dc, gvrCRD, "", obj.GetName())) }, 30*time.Second, 100*time.Millisecond)
}

// moduleDir is the directory of module@version in the Go module cache (downloaded if missing):
// upstream releases' CRDs and charts come from there, offline.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	require.NoError(t, err, "go mod download %s", module)
	var info struct{ Dir string }
	require.NoError(t, json.Unmarshal(out, &info))
	return info.Dir
}

// TestImageTrustPolicy: the ClusterImagePolicy kplane renders is accepted by sigstore
// policy-controller's own CRD schema in a real API server, field for field.
func TestImageTrustPolicy(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	upstreamCRD(t, c, "github.com/sigstore/policy-controller@"+pinned(t, "POLICY_CONTROLLER_VERSION"), "config/300-clusterimagepolicy.yaml")

	pub := fixtures.CosignPublicKey(t)

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
