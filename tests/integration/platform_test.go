package integration

import (
	"context"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/stacks/platform"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

// TestPlatformStack runs what `make up` runs: the platform stack with environments/dev against a
// real cluster, asserts on the live objects, then destroys it.
func TestPlatformStack(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	ctx := context.Background()
	state := t.TempDir()

	cfg, err := automation.LoadEnvironment("../../environments", "dev", "platform")
	require.NoError(t, err)
	cfg["kplane:kubeconfig"] = auto.ConfigValue{Value: c.Kubeconfig, Secret: true}
	s := openStack(t, "dev", platform.Program, cfg, state)
	up, err := s.Up(ctx)
	require.NoError(t, err)
	assert.Equal(t, "dev", up.Outputs["environment"].Value)
	assert.Equal(t, map[string]any{"kplane-system": "kplane-system", "payments": "payments", "web": "web"}, up.Outputs["namespaces"].Value)
	assert.Len(t, up.Outputs["admissionPolicies"].Value, len(hardenedcluster.PolicyNames()), "the full baseline in dev")

	dc, err := c.Dynamic()
	require.NoError(t, err)
	for ns, team := range map[string]string{"payments": "payments", "web": "web", "kplane-system": "platform"} {
		obj := get(t, dc, gvrNamespace, "", ns)
		assert.Equal(t, team, obj.GetLabels()[wellknown.TeamLabel])
		assert.Equal(t, "restricted", obj.GetLabels()["pod-security.kubernetes.io/enforce"])
	}
	storefront := get(t, dc, gvrSA, "web", "storefront")
	mount, _, _ := unstructured.NestedBool(storefront.Object, "automountServiceAccountToken")
	assert.False(t, mount, "CIS 5.1.6: no token unless asked")
	get(t, dc, gvrRole, "payments", "kplane-svc-ledger")
	np := get(t, dc, schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}, "payments", "kplane-namespace-isolation")
	types, _, _ := unstructured.NestedStringSlice(np.Object, "spec", "policyTypes")
	assert.Equal(t, []string{"Ingress", "Egress"}, types, "CIS 5.3.2: every team namespace has a NetworkPolicy")
	crb := get(t, dc, gvrClusterRB, "", "kplane-svc-kplane-system-reporter")
	subjects, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
	require.Len(t, subjects, 1)
	assert.Equal(t, "reporter", subjects[0].(map[string]any)["name"])

	// Pod Security Admission enforces the labels: a privileged pod is refused, a restricted one admitted.
	pods := dc.Resource(gvrPod).Namespace("web")
	_, err = pods.Create(ctx, podObject("bad", true), k8smeta.CreateOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `violates PodSecurity "restricted:v1.37"`)
	assert.Contains(t, err.Error(), "privileged")
	_, err = pods.Create(ctx, podObject("good", false), k8smeta.CreateOptions{})
	require.NoError(t, err, "a pod meeting the restricted profile is admitted")
	require.NoError(t, pods.Delete(ctx, "good", k8smeta.DeleteOptions{}))

	// A second up is a no-op: the stack is declarative.
	again, err := s.Up(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, (*again.Summary.ResourceChanges)["create"]+(*again.Summary.ResourceChanges)["update"])

	// Bad input on another stack of the same cluster: refused with every error at its path and the fix, and
	// nothing is created.
	bad, err := automation.LoadEnvironment("../../environments", "dev", "platform")
	require.NoError(t, err)
	bad["kplane:environment"] = auto.ConfigValue{Value: "bad"}
	bad["kplane:kubeconfig"] = auto.ConfigValue{Value: c.Kubeconfig, Secret: true}
	bad["kplane:security"] = auto.ConfigValue{Value: `{"podSecurityVersion":"1.37","teams":[{"name":"bad","namespaces":["bad-ns"]}],"services":[{"name":"x","namespace":"bad-ns","rules":[{"resources":["secrets"],"verbs":["*"]}]}]}`}
	bs := openStack(t, "bad", platform.Program, bad, state)
	_, err = bs.Up(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `kplane:security.services[0].rules[0] "*": wildcard refused (CIS 5.1.3)`)
	assert.Contains(t, err.Error(), `kplane:security.podSecurityVersion "1.37": use "latest" or a Kubernetes minor version`, "every error at once")
	dep, err := bs.Export(ctx)
	require.NoError(t, err)
	assert.NotContains(t, string(dep.Deployment), "kubernetes:", "no resource may be created from bad input")
	gone(t, dc, gvrNamespace, "", "bad-ns")

	// A misspelt key is an error, not a silently ignored setting.
	bad["kplane:security"] = auto.ConfigValue{Value: `{"team":[]}`}
	bs = openStack(t, "bad", platform.Program, bad, state)
	_, err = bs.Preview(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `config kplane:security: json: unknown field "team"`)

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	for _, ns := range []string{"payments", "web", "kplane-system"} {
		gone(t, dc, gvrNamespace, "", ns)
	}
	gone(t, dc, gvrClusterRB, "", "kplane-svc-kplane-system-reporter")
	noKplaneObjects(t, dc)
}

// podObject is a pod of the web team's storefront service meeting the baseline, or a
// privileged one.
func podObject(name string, privileged bool) *unstructured.Unstructured {
	spec := rules.GoodPodSpec()
	spec["serviceAccountName"] = "storefront"
	if privileged {
		rules.SC(spec)["privileged"] = true
		delete(rules.SC(spec), "allowPrivilegeEscalation")
	}
	obj, _, _ := fixtures.Workload("Pod", "web", name, spec)
	return &unstructured.Unstructured{Object: obj}
}
