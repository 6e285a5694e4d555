package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	composed "github.com/kplane/kplane/components/platform"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/stacks/platform"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

// environmentConfig is environments/<env>'s stack config for a test's cluster: its kubeconfig,
// the tool cache's charts (make tools), the API documents' folder as seen from here and, when
// s3URL is given, the backup store's address.
func environmentConfig(t *testing.T, env, kubeconfig, s3URL string) auto.ConfigMap {
	t.Helper()
	cfg, err := automation.LoadEnvironment("../../environments", env, "platform")
	require.NoError(t, err)
	cfg["kplane:kubeconfig"] = auto.ConfigValue{Value: kubeconfig, Secret: true}
	charts := os.Getenv("KPLANE_CHARTS")
	require.DirExists(t, charts, "KPLANE_CHARTS: the tool cache's charts (make tools)")
	cfg["kplane:charts"] = auto.ConfigValue{Value: charts}
	specs, err := filepath.Abs("../../environments/apis")
	require.NoError(t, err)
	cfg["kplane:gateway"] = patchJSON(t, cfg["kplane:gateway"], func(g map[string]any) { g["specsDir"] = specs })
	if s3URL != "" {
		cfg["kplane:backup"] = patchJSON(t, cfg["kplane:backup"], func(b map[string]any) {
			b["storage"].(map[string]any)["url"] = s3URL
		})
	}
	return cfg
}

func patchJSON(t *testing.T, v auto.ConfigValue, patch func(map[string]any)) auto.ConfigValue {
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(v.Value), &m))
	patch(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return auto.ConfigValue{Value: string(b)}
}

// TestPlatformComposed runs what `make up` runs: environments/dev, the whole platform composed,
// against a real API server with a real Velero and an S3 store: preview under kplane's policy
// pack, up, each capability's objects and the wiring between them in the cluster, a second up
// and a refresh that change nothing, bad input that creates nothing, and a destroy that leaves
// nothing labelled kplane.
func TestPlatformComposed(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	ctx := context.Background()
	state := t.TempDir()
	cs, err := c.Clientset()
	require.NoError(t, err)
	dc, err := c.Dynamic()
	require.NoError(t, err)

	// The backup store and Velero, as `make up` starts them beside the cluster.
	s3URL := testbed.S3(t, "kplane-dev")
	velero, err := testbed.StartVelero(ctx, c, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() {
		velero.Stop()
		if t.Failed() {
			t.Logf("velero log:\n%s", testbed.LastLines(velero.Log, 100))
		}
	})
	_, err = cs.CoreV1().Secrets("velero").Create(ctx, &corev1.Secret{ObjectMeta: k8smeta.ObjectMeta{Name: "kplane-backup-s3"},
		StringData: map[string]string{"cloud": "[default]\naws_access_key_id=kplane\naws_secret_access_key=kplane-secret\n"}}, k8smeta.CreateOptions{})
	require.NoError(t, err)

	cfg := environmentConfig(t, "dev", c.Kubeconfig, s3URL)
	s := openStack(t, "dev", platform.Program, cfg, state)
	pre, err := s.Preview(ctx, optpreview.PolicyPacks(buildCommand(t, "github.com/kplane/kplane/cmd/kplane-kubernetes")))
	require.NoError(t, err, "the composed dev platform passes kplane's own policies")
	assert.NotContains(t, pre.StdOut, "[mandatory]")

	up, err := s.Up(ctx)
	require.NoError(t, err)
	t.Logf("composed dev platform: %d resources", resourceCount(up.Summary.ResourceChanges))
	assert.Equal(t, "dev", up.Outputs["environment"].Value)
	summary := up.Outputs["platform"].Value.(map[string]any)
	assert.ElementsMatch(t, []string{"security", "identity", "mesh", "gateway", "backup"}, keysOf(summary), "a summary per capability")

	checkSecurity(t, ctx, dc, summary)
	checkMesh(t, dc)
	checkIdentity(t, dc)
	checkBackup(t, dc)

	// A second up and a refresh change nothing: the stack is declarative and nothing drifts.
	again, err := s.Up(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, (*again.Summary.ResourceChanges)["create"]+(*again.Summary.ResourceChanges)["update"]+(*again.Summary.ResourceChanges)["delete"])
	ref, err := s.Refresh(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, (*ref.Summary.ResourceChanges)["update"]+(*ref.Summary.ResourceChanges)["delete"], "refresh finds no drift")

	badInputCreatesNothing(t, ctx, c, dc, state)

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	for _, ns := range []string{"payments", "web", "kplane-system", "istio-system", "kplane-gateway", "kplane-identity"} {
		gone(t, dc, gvrNamespace, "", ns)
	}
	noKplaneObjects(t, dc)
}

func checkSecurity(t *testing.T, ctx context.Context, dc dynamic.Interface, summary map[string]any) {
	for ns, team := range map[string]string{"payments": "payments", "web": "web", "kplane-system": "platform"} {
		obj := get(t, dc, gvrNamespace, "", ns)
		assert.Equal(t, team, obj.GetLabels()[wellknown.TeamLabel])
		assert.Equal(t, "restricted", obj.GetLabels()["pod-security.kubernetes.io/enforce"])
	}
	storefront := get(t, dc, gvrSA, "web", "storefront")
	mount, _, _ := unstructured.NestedBool(storefront.Object, "automountServiceAccountToken")
	assert.False(t, mount, "CIS 5.1.6: no token unless asked")
	np := get(t, dc, schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}, "payments", "kplane-namespace-isolation")
	types, _, _ := unstructured.NestedStringSlice(np.Object, "spec", "policyTypes")
	assert.Equal(t, []string{"Ingress", "Egress"}, types, "CIS 5.3.2: every team namespace has a NetworkPolicy")

	// Exemptions: exactly the namespaces that need one, each with its reason in the outputs.
	exemptions := summary["security"].(map[string]any)["exemptions"].(map[string]any)
	assert.ElementsMatch(t, []string{"kube-system", "kube-public", "kube-node-lease", "istio-ingress"}, keysOf(exemptions))
	assert.Contains(t, exemptions["istio-ingress"], "image \"auto\"")
	policy := get(t, dc, schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}, "", rules.AllowedNamespaces)
	raw, _ := json.Marshal(policy.Object)
	assert.Contains(t, string(raw), "istio-system", "istiod's namespace is a platform namespace: allowed, and held to the baseline")
	assert.Len(t, summary["security"].(map[string]any)["admissionPolicies"], len(hardenedcluster.PolicyNames()))

	// Pod Security Admission enforces the labels (kplane-system is out of the mesh: no injection
	// webhook, which the test bed cannot serve, stands between).
	pods := dc.Resource(gvrPod).Namespace("kplane-system")
	_, err := pods.Create(ctx, podObject("bad", true), k8smeta.CreateOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `violates PodSecurity "restricted:v1.37"`)
	_, err = pods.Create(ctx, podObject("good", false), k8smeta.CreateOptions{})
	require.NoError(t, err, "a pod meeting the restricted profile is admitted")
	require.NoError(t, pods.Delete(ctx, "good", k8smeta.DeleteOptions{}))
}

var (
	gvrAuthz    = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	gvrPeerAuth = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
	gvrReqAuth  = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "requestauthentications"}
	gvrSchedule = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "schedules"}
	gvrBSL      = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backupstoragelocations"}
	gvrConfig   = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

// checkMesh: the team namespaces are in the mesh, STRICT and deny by default; the gateway may
// call the services it publishes, and no other.
func checkMesh(t *testing.T, dc dynamic.Interface) {
	get(t, dc, gvrDeployment, "istio-system", "istiod-1-29-2")
	for _, ns := range []string{"payments", "web"} {
		assert.Equal(t, "stable", get(t, dc, gvrNamespace, "", ns).GetLabels()["istio.io/rev"], "%s joins the mesh", ns)
	}
	assert.Empty(t, get(t, dc, gvrNamespace, "", "kplane-system").GetLabels()["istio.io/rev"], "kplane-system opted out by name")
	mode, _, _ := unstructured.NestedString(get(t, dc, gvrPeerAuth, "istio-system", "default").Object, "spec", "mtls", "mode")
	assert.Equal(t, "STRICT", mode)

	gatewayPrincipal := "cluster.local/ns/istio-ingress/sa/ingress"
	allowed := func(ns string) map[string][]string { // service -> principals allowed to call it
		list, err := dc.Resource(gvrAuthz).Namespace(ns).List(context.Background(), k8smeta.ListOptions{})
		require.NoError(t, err)
		out := map[string][]string{}
		for _, p := range list.Items {
			app, _, _ := unstructured.NestedString(p.Object, "spec", "selector", "matchLabels", "app")
			raw, _ := json.Marshal(p.Object["spec"])
			var spec struct {
				Rules []struct {
					From []struct {
						Source struct{ Principals []string } `json:"source"`
					} `json:"from"`
				} `json:"rules"`
			}
			require.NoError(t, json.Unmarshal(raw, &spec))
			for _, r := range spec.Rules {
				for _, f := range r.From {
					out[app] = append(out[app], f.Source.Principals...)
				}
			}
		}
		return out
	}
	assert.Contains(t, allowed("payments")["ledger"], gatewayPrincipal, "the gateway reaches the ledger it publishes")
	assert.Contains(t, allowed("web")["storefront"], gatewayPrincipal)
	for ns, services := range map[string]map[string][]string{"payments": allowed("payments"), "web": allowed("web")} {
		for svc, principals := range services {
			if (ns == "payments" && svc == "ledger") || (ns == "web" && svc == "storefront") {
				continue
			}
			assert.NotContains(t, principals, gatewayPrincipal, "%s/%s is not published: the gateway may not call it", ns, svc)
		}
	}
	// identity -> gateway: tokens checked against the realm's JWKS (Keycloak's key rotation
	// followed without an edit).
	ra := get(t, dc, gvrReqAuth, "istio-ingress", "kplane-keycloak")
	rules, _, _ := unstructured.NestedSlice(ra.Object, "spec", "jwtRules")
	require.NotEmpty(t, rules)
	assert.Equal(t, "https://127.0.0.1:8443/realms/kplane", rules[0].(map[string]any)["issuer"])
	assert.Equal(t, "https://127.0.0.1:8443/realms/kplane/protocol/openid-connect/certs", rules[0].(map[string]any)["jwksUri"])
}

// checkIdentity: the realm holds a client per tool the platform installs and per API consumer.
func checkIdentity(t *testing.T, dc dynamic.Interface) {
	cms, err := dc.Resource(gvrConfig).Namespace("kplane-identity").List(context.Background(), k8smeta.ListOptions{LabelSelector: wellknown.RealmLabel})
	require.NoError(t, err)
	require.Len(t, cms.Items, 1)
	data, _, _ := unstructured.NestedString(cms.Items[0].Object, "data", "realm.json")
	var realm struct{ Clients []map[string]any }
	require.NoError(t, json.Unmarshal([]byte(data), &realm))
	clients := map[string]map[string]any{}
	for _, cl := range realm.Clients {
		clients[cl["clientId"].(string)] = cl
	}
	require.Contains(t, clients, "api-catalog", "the catalog logs in through the realm")
	assert.Equal(t, []any{"https://developers.dev.kplane.test/callback"}, clients["api-catalog"]["redirectUris"])
	require.Contains(t, clients, "partner-acme", "the gateway's consumer is a client of the realm")
	assert.Equal(t, true, clients["partner-acme"]["serviceAccountsEnabled"])
	assert.Equal(t, false, clients["partner-acme"]["standardFlowEnabled"], "client credentials only")
}

// checkBackup: every team namespace and the platform's are in a schedule, and the real Velero
// finds the location usable.
func checkBackup(t *testing.T, dc dynamic.Interface) {
	namespaces := func(name string) []string {
		ns, _, _ := unstructured.NestedStringSlice(get(t, dc, gvrSchedule, "velero", name).Object, "spec", "template", "includedNamespaces")
		return ns
	}
	assert.ElementsMatch(t, []string{"kplane-system", "payments", "web"}, namespaces(composed.TeamSchedule))
	assert.Subset(t, namespaces(composed.PlatformSchedule), []string{"kplane-identity", "istio-system", "kplane-gateway"}, "the platform's own state")
	require.Eventually(t, func() bool {
		phase, _, _ := unstructured.NestedString(get(t, dc, gvrBSL, "velero", "default").Object, "status", "phase")
		return phase == "Available"
	}, 60*time.Second, time.Second, "Velero reaches the store")
}

// badInputCreatesNothing: another stack on the same cluster with mistakes in two capabilities is
// refused with every error at its path, and nothing is created.
func badInputCreatesNothing(t *testing.T, ctx context.Context, c *testbed.Cluster, dc dynamic.Interface, state string) {
	bad := environmentConfig(t, "dev", c.Kubeconfig, "")
	bad["kplane:environment"] = auto.ConfigValue{Value: "bad"}
	bad["kplane:security"] = auto.ConfigValue{Value: `{"podSecurityVersion":"1.37","teams":[{"name":"bad","namespaces":["bad-ns"]}],"services":[{"name":"x","namespace":"bad-ns","rules":[{"resources":["secrets"],"verbs":["*"]}]}]}`}
	bs := openStack(t, "bad", platform.Program, bad, state)
	_, err := bs.Up(ctx)
	require.Error(t, err)
	for _, want := range []string{
		`kplane:security.services[0].rules[0] "*": wildcard refused (CIS 5.1.3)`,
		`kplane:security.podSecurityVersion "1.37": use "latest" or a Kubernetes minor version`,
		`kplane:gateway.apis[0].versions[0].upstream.namespace "payments": not a team namespace; known team namespaces: bad-ns`,
		`kplane:identity.teams[0].namespaces[0] "payments": not a team namespace`,
	} {
		assert.Contains(t, err.Error(), want, "every error at once")
	}
	dep, err := bs.Export(ctx)
	require.NoError(t, err)
	assert.NotContains(t, string(dep.Deployment), "kubernetes:", "no resource may be created from bad input")
	gone(t, dc, gvrNamespace, "", "bad-ns")

	// A misspelt key is an error at its path, not a silently ignored setting.
	bad["kplane:security"] = auto.ConfigValue{Value: `{"team":[]}`}
	bs = openStack(t, "bad", platform.Program, bad, state)
	_, err = bs.Preview(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `kplane:security.team: unknown key; known keys: admission, apiAccess`)
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func resourceCount(changes *map[string]int) int {
	n := 0
	for _, v := range *changes {
		n += v
	}
	return n
}

// podObject is a pod of the platform team's reporter meeting the baseline, or a privileged one.
func podObject(name string, privileged bool) *unstructured.Unstructured {
	spec := rules.GoodPodSpec()
	spec["serviceAccountName"] = "reporter"
	if privileged {
		rules.SC(spec)["privileged"] = true
		delete(rules.SC(spec), "allowPrivilegeEscalation")
	}
	obj, _, _ := fixtures.Workload("Pod", "kplane-system", name, spec)
	return &unstructured.Unstructured{Object: obj}
}
