package integration

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/tests/testbed"
)

// TestFleetPull: the pull model. The member jeju runs its own Argo CD (the release's repo-server
// and application controller); the management cluster runs none and gets nothing of jeju. A
// member without Argo CD is refused before anything is made. Registration puts jeju's entry,
// AppProject and Applications beside its Argo CD without automated sync, so nothing is deployed
// until the wave runner enables it; the wave waits for jeju's own Argo CD to sync its render
// (audit, its values) as the two deployers; a changed value reaches it as a new render by `up`,
// which leaves the runner's enabling alone; `down` leaves nothing of kplane on jeju.
func TestFleetPull(t *testing.T) {
	integration(t)
	ctx := context.Background()
	clusters := testbed.StartN(t, 2, testbed.Options{Nodes: 1, APIServerArgs: []string{"--shutdown-watch-termination-grace-period=5s"}})
	mgmt, jeju := clusters[0], clusters[1]
	git := testbed.StartGitServer(t, t.TempDir())
	envs, state, checkout := t.TempDir(), t.TempDir(), t.TempDir()
	_, fleet := fleetCLI(t, checkout, envs, state)
	// Its own Argo CD reaches jeju at the kubeconfig's address here (a local process, not a pod
	// where https://kubernetes.default.svc, the default, would be right).
	jcfg, err := clientcmd.BuildConfigFromFlags("", jeju.Kubeconfig)
	require.NoError(t, err)
	repoURL := "https://git.example.com/platform.git"
	env := func(mode, revision string) {
		fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, revision, []map[string]any{{"name": "jeju", "kubeconfig": jeju.Kubeconfig, "mode": "pull",
			"server": jcfg.Host, "labels": map[string]any{"region": "jeju"}, "values": map[string]any{"security": map[string]any{"admission": map[string]any{"mode": mode}}}}})
	}
	env("audit", "v1.4.0")
	repoURL = renderAndPush(t, fleet, git, checkout, "v1.4.0")
	env("audit", "v1.4.0")
	jcs, err := jeju.Clientset()
	require.NoError(t, err)
	jdyn, err := jeju.Dynamic()
	require.NoError(t, err)
	apps := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
	platformApp := fleetmember.ApplicationSetName("test") + "-jeju"

	// Without Argo CD on the member: refused, nothing made.
	out, err := fleet("up")
	require.Error(t, err, out)
	assert.Contains(t, out, "cluster jeju (mode pull: its own Argo CD syncs it): no Argo CD in namespace argocd (argocd-cm not found)")
	_, err = jcs.CoreV1().Namespaces().Get(ctx, fleetmember.MemberNamespace, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "nothing half-registered: %v", err)

	startArgoCD(t, jeju, "jeju's Argo CD's", testbed.ArgoCDOptions{TrustedCAs: map[string][]byte{"127.0.0.1": git.CA}, WithoutApplicationSets: true})

	// Registered: its Applications wait beside its Argo CD, which compares but does not sync them.
	out, err = fleet("up")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool {
		app := get(t, jdyn, apps, "argocd", platformApp)
		s, _, _ := unstructured.NestedString(app.Object, "status", "sync", "status")
		return s == "OutOfSync"
	}, 60*time.Second, time.Second, "jeju's Argo CD compared its Application")
	_, err = jcs.CoreV1().Namespaces().Get(ctx, "payments", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "nothing deployed before the wave: %v", err)
	// The state holds no credential in clear: neither cluster's administrator key nor the token
	// kplane made for Argo CD on jeju.
	creds := kubeconfigCredentials(t, mgmt.Kubeconfig)
	maps.Copy(creds, kubeconfigCredentials(t, jeju.Kubeconfig))
	token, err := jcs.CoreV1().Secrets(fleetmember.MemberNamespace).Get(ctx, "kplane-argocd-token", metav1.GetOptions{})
	require.NoError(t, err)
	creds["jeju's Argo CD token"] = token.Data["token"]
	noCredentialsInState(t, state, creds)

	// Nothing of jeju, and no Argo CD, on the management cluster.
	mcs, err := mgmt.Clientset()
	require.NoError(t, err)
	secrets, err := mcs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: wellknown.MemberLabel})
	require.NoError(t, err)
	assert.Empty(t, secrets.Items)
	_, err = mcs.Discovery().ServerResourcesForGroupVersion("argoproj.io/v1alpha1")
	assert.True(t, apierrors.IsNotFound(err), "no Argo CD on the management cluster: %v", err)

	// The wave enables jeju and waits for its own Argo CD.
	start := time.Now()
	out, err = fleet("rollout")
	require.NoError(t, err, out)
	t.Logf("rollout to a pull member in %.1f s:\n%s", time.Since(start).Seconds(), out)
	assert.Contains(t, out, "wave 1 [jeju]: healthy, enabled, 2 applications synced and healthy")
	memberHoldsThePlatform(t, jeju, "jeju", "audit")
	entry, err := jcs.CoreV1().Secrets("argocd").Get(ctx, "kplane-cluster-jeju", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, jcfg.Host, string(entry.Data["server"]), "the Applications' destination: this entry, with its token")
	entryIsNarrow(t, entry, "")

	// A new value (enforce) reaches jeju as a new render and revision by `up`; `up` leaves the
	// wave runner's automated sync in place.
	env("enforce", "v1.4.1")
	renderAndPush(t, fleet, git, checkout, "v1.4.1")
	out, err = fleet("up")
	require.NoError(t, err, out)
	automated, _, _ := unstructured.NestedMap(get(t, jdyn, apps, "argocd", platformApp).Object, "spec", "syncPolicy", "automated")
	assert.Equal(t, map[string]any{"prune": true, "selfHeal": true}, automated)
	require.Eventually(t, func() bool {
		b, err := jcs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, "kplane-no-privileged", metav1.GetOptions{})
		require.NoError(t, err)
		return slices.Contains(b.Spec.ValidationActions, "Deny")
	}, 90*time.Second, time.Second, "jeju's Argo CD synced the new render")
	memberHoldsThePlatform(t, jeju, "jeju", "enforce")

	// Deregistering an environment other than dev needs --yes (no terminal to ask here).
	out, err = fleet("down")
	require.Error(t, err, out)
	assert.Contains(t, out, `kplane-fleet down destroys environment "test" on its clusters (jeju) and the management cluster: add --yes to confirm`)
	_, err = jcs.CoreV1().Namespaces().Get(ctx, fleetmember.MemberNamespace, metav1.GetOptions{})
	require.NoError(t, err, "nothing deregistered")

	// Deregistered: nothing of kplane on jeju, its Applications and AppProjects included.
	out, err = fleet("down", "--yes")
	require.NoError(t, err, out)
	noKplaneOn(t, jeju)
	for _, res := range []string{"applications", "appprojects"} {
		list, err := jdyn.Resource(schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: res}).Namespace("argocd").
			List(ctx, metav1.ListOptions{LabelSelector: wellknown.MemberLabel})
		require.NoError(t, err)
		assert.Empty(t, list.Items, res)
	}
}

// TestFleetRancher: the Rancher import, with Rancher's side played by the test bed (Rancher
// cannot run here). `up` creates the member's provisioning Cluster; once Rancher has issued the
// registration, kplane-fleet applies its manifest on the member with the member's own provider
// (the second up). The registration token stays a secret: not in the output nor in Pulumi's
// state files. A Rancher that cannot serve the manifest stops `up` without removing the agent;
// `down` removes the agent from the member and the import from the management cluster.
func TestFleetRancher(t *testing.T) {
	integration(t)
	ctx := context.Background()
	clusters := testbed.StartN(t, 2, testbed.Options{Nodes: 1})
	mgmt, ulsan := clusters[0], clusters[1]
	require.NoError(t, testbed.InstallArgoCD(ctx, mgmt))
	rancher := testbed.StartRancherStandIn(t, mgmt)
	envs, state := t.TempDir(), t.TempDir()
	_, fleet := fleetCLI(t, t.TempDir(), envs, state)
	writeFleetEnv(t, envs, "test", map[string]any{"environment": "test", "management": mgmt.Kubeconfig,
		"rancher":  map[string]any{"workspace": "fleet-default"},
		"clusters": []any{map[string]any{"name": "ulsan", "kubeconfig": ulsan.Kubeconfig, "labels": map[string]any{"region": "ulsan"}}}})

	start := time.Now()
	out, err := fleet("up")
	require.NoError(t, err, out)
	t.Logf("up with the Rancher import (two ups) in %.1f s", time.Since(start).Seconds())
	assert.Contains(t, out, "applied Rancher's registration on 1 clusters")
	token := rancher.Token(ctx, mgmt, "fleet-default", "ulsan")
	require.NotEmpty(t, token, "Rancher issued ulsan's registration")
	mdyn, err := mgmt.Dynamic()
	require.NoError(t, err)
	imported := get(t, mdyn, schema.GroupVersionResource{Group: "provisioning.cattle.io", Version: "v1", Resource: "clusters"}, "fleet-default", "ulsan")
	assert.Equal(t, "ulsan", imported.GetLabels()["region"])
	// The agent, applied on ulsan with its own credentials: the token Rancher issued for it.
	ucs, err := ulsan.Clientset()
	require.NoError(t, err)
	agent, err := ucs.AppsV1().Deployments("cattle-system").Get(ctx, "cattle-cluster-agent", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, rancher.URL, agent.Spec.Template.Spec.Containers[0].Env[0].Value)
	creds, err := ucs.CoreV1().Secrets("cattle-system").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var tokens []string
	for _, s := range creds.Items {
		if strings.HasPrefix(s.Name, "cattle-credentials-") {
			tokens = append(tokens, string(s.Data["token"]))
		}
	}
	assert.Equal(t, []string{token}, tokens)
	_, err = ucs.RbacV1().ClusterRoleBindings().Get(ctx, "cattle-admin-binding", metav1.GetOptions{})
	require.NoError(t, err)
	// The token is a secret: not in the output, not in the state (encrypted there).
	assert.NotContains(t, out, token)
	require.NoError(t, filepath.WalkDir(state, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.NotContains(t, string(b), token, "%s holds the registration token in plain text", path)
		return nil
	}))

	// Rancher cannot serve the manifest: `up` stops, saying so without the token; the agent stays.
	rancher.Down.Store(true)
	out, err = fleet("up")
	require.Error(t, err, out)
	assert.Contains(t, out, "cluster ulsan: Rancher's registration manifest "+rancher.URL+"/v3/import/{token}_")
	assert.Contains(t, out, "503 Service Unavailable")
	assert.NotContains(t, out, token)
	_, err = ucs.AppsV1().Deployments("cattle-system").Get(ctx, "cattle-cluster-agent", metav1.GetOptions{})
	require.NoError(t, err, "the agent is left in place")
	rancher.Down.Store(false)
	out, err = fleet("up")
	require.NoError(t, err, out)
	assert.NotContains(t, out, "applied Rancher's registration", "registered already: one up")

	// Deregistered: the agent leaves ulsan, the import the management cluster.
	out, err = fleet("down", "--yes")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool {
		_, err := ucs.CoreV1().Namespaces().Get(ctx, "cattle-system", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 60*time.Second, time.Second, "cattle-system deleted")
	_, err = ucs.RbacV1().ClusterRoleBindings().Get(ctx, "cattle-admin-binding", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "cattle-admin-binding deleted: %v", err)
	_, err = mdyn.Resource(schema.GroupVersionResource{Group: "provisioning.cattle.io", Version: "v1", Resource: "clusters"}).Namespace("fleet-default").
		Get(ctx, "ulsan", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the import is gone: %v", err)
	noKplaneOn(t, ulsan)
}
