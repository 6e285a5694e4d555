package integration

import (
	"cmp"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	k8sclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/tests/testbed"
)

// What a fleet member holds and may do, checked on the real clusters of the fleet tests.

// badInputRegistersNothing: a duplicate name, an unreachable cluster, a kubeconfig without
// rights, and an Argo CD that would not respect RBAC or impersonate are refused by `up` with
// their messages, and nothing is registered (env writes the environment with the clusters).
func badInputRegistersNothing(t *testing.T, clusters []*testbed.Cluster, fleet func(...string) (string, error), entry func(int, string) map[string]any,
	registered func() int, env func([]map[string]any)) {
	t.Helper()
	ctx := context.Background()
	unreachable := filepath.Join(t.TempDir(), "unreachable.kubeconfig")
	kc, err := os.ReadFile(clusters[2].Kubeconfig)
	require.NoError(t, err)
	cfg, err := clientcmd.Load(kc)
	require.NoError(t, err)
	for _, cl := range cfg.Clusters {
		cl.Server = "https://127.0.0.1:1"
	}
	require.NoError(t, clientcmd.WriteToFile(*cfg, unreachable))
	cs2, err := clusters[1].Clientset()
	require.NoError(t, err)
	_, err = cs2.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "viewer"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, bad := range []struct {
		clusters []map[string]any
		want     string
	}{
		{[]map[string]any{entry(0, clusters[0].Kubeconfig), entry(0, clusters[1].Kubeconfig)}, `kplane:fleet.clusters[1].name "seoul": used twice`},
		{[]map[string]any{entry(0, clusters[0].Kubeconfig), entry(2, unreachable)}, "cluster daejeon: unreachable at https://127.0.0.1:1"},
		{[]map[string]any{entry(0, clusters[0].Kubeconfig), entry(1, serviceAccountKubeconfig(t, clusters[1], "default", "viewer"))},
			"cluster busan: the kubeconfig's user may not create namespaces"},
	} {
		env(bad.clusters)
		out, err := fleet("up")
		require.Error(t, err, out)
		assert.Contains(t, out, bad.want)
		assert.Zero(t, registered(), "nothing half-registered")
	}
	mcs, err := clusters[0].Clientset()
	require.NoError(t, err)
	var all []map[string]any
	for i, c := range clusters {
		all = append(all, entry(i, c.Kubeconfig))
	}
	env(all)
	for key, want := range map[string]string{
		"resource.respectRBAC":                   `argocd/argocd-cm has resource.respectRBAC "": set it to "normal"`,
		"application.sync.impersonation.enabled": `argocd/argocd-cm has application.sync.impersonation.enabled "": set it to "true"`,
	} {
		cm, err := mcs.CoreV1().ConfigMaps("argocd").Get(ctx, "argocd-cm", metav1.GetOptions{})
		require.NoError(t, err)
		was := cm.Data[key]
		setArgoCD := func(v string) {
			patch, _ := json.Marshal(map[string]any{"data": map[string]any{key: v}})
			_, err := mcs.CoreV1().ConfigMaps("argocd").Patch(ctx, "argocd-cm", types.MergePatchType, patch, metav1.PatchOptions{})
			require.NoError(t, err)
		}
		setArgoCD("")
		out, err := fleet("up")
		require.Error(t, err, out)
		assert.Contains(t, out, want)
		assert.Zero(t, registered(), "nothing half-registered")
		setArgoCD(was)
	}
}

// memberHoldsThePlatform: what Argo CD synced on the member c: the render's namespace and
// service account, tracked by the member's Application, and the admission policies in its mode
// (a privileged pod denied for real under enforce, admitted with a warning under audit).
func memberHoldsThePlatform(t *testing.T, c *testbed.Cluster, name, mode string) {
	t.Helper()
	ctx := context.Background()
	cs, err := c.Clientset()
	require.NoError(t, err)
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "payments", metav1.GetOptions{})
	require.NoError(t, err, name)
	assert.True(t, strings.HasPrefix(ns.Annotations["argocd.argoproj.io/tracking-id"], fleetmember.ApplicationSetName("test")+"-"+name+":"),
		"%s: tracked by its platform Application: %v", name, ns.Annotations)
	_, err = cs.CoreV1().ServiceAccounts("payments").Get(ctx, "ledger", metav1.GetOptions{})
	require.NoError(t, err, name)
	binding, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, "kplane-no-privileged", metav1.GetOptions{})
	require.NoError(t, err, name)
	assert.True(t, strings.HasPrefix(binding.Annotations["argocd.argoproj.io/tracking-id"], fleetmember.PolicyApplicationSetName("test")+"-"+name+":"),
		"%s: tracked by its policies' Application", name)

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	require.NoError(t, err)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	spec := rules.GoodPodSpec()
	sc := rules.Container(spec)["securityContext"].(map[string]any)
	sc["privileged"], sc["allowPrivilegeEscalation"] = true, true // the API server refuses privileged without escalation
	// In default: the team's namespace holds Pod Security's restricted level, which would refuse
	// it before kplane's policies in either mode.
	pod := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "privileged", "namespace": "default"}, "spec": spec}}
	require.Eventually(t, func() bool { // the API server's policy cache picks a new binding up within a second or so
		_, err = dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace("default").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if mode == "enforce" {
			return err != nil
		}
		return err == nil && strings.Contains(warnings.String(), "kplane-no-privileged")
	}, 30*time.Second, 500*time.Millisecond, "%s (%s): a privileged pod", name, mode)
	if mode == "enforce" { // by the first of kplane's policies it violates (the API server stops there)
		assert.Regexp(t, `ValidatingAdmissionPolicy 'kplane-[a-z-]+' with binding .* denied request`, err.Error(), "%s: denied by kplane's policy", name)
		assert.Contains(t, binding.Spec.ValidationActions, admissionv1.Deny, name)
	} else {
		assert.NotContains(t, binding.Spec.ValidationActions, admissionv1.Deny, name)
	}
}

// warningRecorder keeps the API server's warnings.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningRecorder) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "\n")
}

// entryIsNarrow: the Argo CD cluster entry's credentials, used directly (at server, when the
// entry's own is the in-cluster address), may read the render's kinds and nothing else, change
// nothing themselves, and act as the two deployers only: the platform's may create namespaces
// but not admission policies, the policies' the reverse.
func entryIsNarrow(t *testing.T, secret *corev1.Secret, server string) {
	t.Helper()
	ctx := context.Background()
	name := string(secret.Data["name"])
	assert.Equal(t, "true", string(secret.Data["clusterResources"]))
	var conf struct {
		BearerToken     string `json:"bearerToken"`
		TLSClientConfig struct {
			CAData []byte `json:"caData"`
		} `json:"tlsClientConfig"`
	}
	require.NoError(t, json.Unmarshal(secret.Data["config"], &conf))
	as := func(who string) k8sclient.Interface {
		cfg := &rest.Config{Host: cmp.Or(server, string(secret.Data["server"])), BearerToken: conf.BearerToken,
			TLSClientConfig: rest.TLSClientConfig{CAData: conf.TLSClientConfig.CAData}}
		if who != "" {
			cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + fleetmember.MemberNamespace + ":" + who}
		}
		cs, err := k8sclient.NewForConfig(cfg)
		require.NoError(t, err)
		return cs
	}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	newNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kplane-narrow-check"}}
	policy := &admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "kplane-narrow-check"}, Spec: admissionv1.ValidatingAdmissionPolicySpec{
		MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
			Operations: []admissionv1.OperationType{admissionv1.Create}, Rule: admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}}}},
		Validations: []admissionv1.Validation{{Expression: "true"}}}}
	entry := as("")
	_, err := entry.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	assert.NoError(t, err, "%s: Argo CD reads the render's kinds", name)
	_, err = entry.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "%s: and no other kind: %v", name, err)
	_, err = entry.CoreV1().Namespaces().Create(ctx, newNS, dry)
	assert.True(t, apierrors.IsForbidden(err), "%s: changes nothing as itself: %v", name, err)
	_, err = as(fleetmember.PlatformDeployer).CoreV1().Namespaces().Create(ctx, newNS, dry)
	assert.NoError(t, err, "%s: the platform's deployer creates the platform's kinds", name)
	_, err = as(fleetmember.PlatformDeployer).AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, dry)
	assert.True(t, apierrors.IsForbidden(err), "%s: but no admission policy: %v", name, err)
	_, err = as(fleetmember.PolicyDeployer).AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, dry)
	assert.NoError(t, err, "%s: the policies' deployer creates admission policies", name)
	_, err = as(fleetmember.PolicyDeployer).CoreV1().Namespaces().Create(ctx, newNS, dry)
	assert.True(t, apierrors.IsForbidden(err), "%s: and nothing else: %v", name, err)
	_, err = as("default").CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "%s: no other account of kplane-fleet can be impersonated: %v", name, err)
}

// noKplaneOn: no object of any kind the member component applies is left on the cluster.
func noKplaneOn(t *testing.T, c *testbed.Cluster) {
	t.Helper()
	ctx := context.Background()
	cs, err := c.Clientset()
	require.NoError(t, err)
	sel := metav1.ListOptions{LabelSelector: wellknown.MemberLabel}
	require.Eventually(t, func() bool {
		ns, err := cs.CoreV1().Namespaces().List(ctx, sel)
		require.NoError(t, err)
		return len(ns.Items) == 0
	}, 60*time.Second, time.Second, "the kplane-fleet namespace deleted")
	crs, err := cs.RbacV1().ClusterRoles().List(ctx, sel)
	require.NoError(t, err)
	assert.Empty(t, crs.Items, "cluster roles")
	crbs, err := cs.RbacV1().ClusterRoleBindings().List(ctx, sel)
	require.NoError(t, err)
	assert.Empty(t, crbs.Items, "cluster role bindings")
	for _, list := range []func() (int, error){
		func() (int, error) {
			l, err := cs.CoreV1().ServiceAccounts("").List(ctx, sel)
			return len(l.Items), err
		},
		func() (int, error) { l, err := cs.CoreV1().Secrets("").List(ctx, sel); return len(l.Items), err },
		func() (int, error) { l, err := cs.RbacV1().RoleBindings("").List(ctx, sel); return len(l.Items), err },
	} {
		n, err := list()
		require.NoError(t, err)
		assert.Zero(t, n)
	}
}
