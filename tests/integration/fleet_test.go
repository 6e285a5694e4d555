package integration

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8sclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/components/fleetmember/rollout"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/tests/testbed"
)

// fleetEnv writes environments/<env>/fleet.yaml for the clusters (named by clusters' keys), the
// platform's charts in the Git repository repoURL.
func fleetEnv(t *testing.T, dir, env, management, repoURL string, clusters []map[string]any) {
	t.Helper()
	writeFleetEnv(t, dir, env, map[string]any{"environment": env, "management": management,
		"platform": map[string]any{"repoURL": repoURL, "revision": "v1.4.0",
			"chartPath": "charts/platform", "policyChartPath": "charts/policies"},
		"clusters": clusters})
}

// writeFleetEnv writes environments/<env>/fleet.yaml with fleet as kplane:fleet.
func writeFleetEnv(t *testing.T, dir, env string, fleet map[string]any) {
	t.Helper()
	raw, err := yaml.Marshal(map[string]any{"config": map[string]any{"kplane:fleet": fleet}})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, env), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, env, "fleet.yaml"), raw, 0o600))
}

// startArgoCD starts Argo CD's controllers on c until the test ends, printing the end of their
// logs (as who's) when the test failed.
func startArgoCD(t *testing.T, c *testbed.Cluster, who string, o testbed.ArgoCDOptions) {
	t.Helper()
	argo, err := testbed.StartArgoCD(context.Background(), c, t.TempDir(), o)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s logs:\n%s", who, argo.Logs(40))
		}
		argo.Stop()
	})
}

// platformCharts is the platform's Git repository: the platform chart (an agent Deployment and
// its settings, values common -> environment -> cluster) and the policy templates' chart (their
// per-cluster parameters), as Argo CD's repo-server renders them with Helm.
var platformCharts = map[string]string{
	"charts/platform/Chart.yaml":         "apiVersion: v2\nname: platform\nversion: 1.4.0\n",
	"charts/platform/values/common.yaml": "replicas: 1\nlogLevel: info\ntier: standard\n",
	"charts/platform/values/test.yaml":   "logLevel: debug\n",
	"charts/platform/templates/agent.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: platform-agent, labels: {app: platform-agent}}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: platform-agent}}
  template:
    metadata: {labels: {app: platform-agent}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: agent
          image: registry.example.com/platform-agent` + rules.Digest + `
          args: ["--log-level={{ .Values.logLevel }}"]
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: platform-settings}
data: {logLevel: {{ .Values.logLevel | quote }}, tier: {{ .Values.tier | quote }}, replicas: {{ .Values.replicas | quote }}}
`,
	"charts/policies/Chart.yaml":  "apiVersion: v2\nname: policies\nversion: 1.4.0\n",
	"charts/policies/values.yaml": "cluster: \"\"\nmode: enforce\nenvironment: \"\"\n",
	"charts/policies/templates/parameters.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: kplane-policy-parameters}
data: {cluster: {{ .Values.cluster | quote }}, mode: {{ .Values.mode | quote }}, environment: {{ .Values.environment | quote }}}
`,
}

// TestFleet: three real clusters, the first also the management cluster running Argo CD's own
// controllers (repo-server, application and ApplicationSet controllers of its release) and a
// real Git server with the platform's charts. Bad input (a duplicate name, an unreachable
// cluster, a kubeconfig without rights) is refused with nothing registered. `kplane-fleet run`
// registers all three (least-privilege credentials verified by using them), checks their health
// and enables them in waves, each wave waiting until Argo CD has synced its clusters with those
// credentials (per-cluster values and policy parameters checked on the members); a stopped
// cluster turns red within two intervals and stops the next rollout at its wave, which resumes
// once it is back; removing a cluster from the environment leaves nothing of kplane on it and
// removes its Applications; `down` deregisters all.
func TestFleet(t *testing.T) {
	integration(t)
	ctx := context.Background()
	// Argo CD keeps watches open on the members: a member's API server that is stopped drains
	// them (within 5 s) instead of waiting for them to end.
	clusters := testbed.StartN(t, 3, testbed.Options{Nodes: 1, APIServerArgs: []string{"--shutdown-watch-termination-grace-period=5s"}})
	mgmt := clusters[0]
	git := testbed.StartGitServer(t, t.TempDir())
	repoURL := git.Push(t, "platform", "v1.4.0", platformCharts)
	startArgoCD(t, mgmt, "Argo CD's", testbed.ArgoCDOptions{TrustedCAs: map[string][]byte{"127.0.0.1": git.CA}})
	mcs, err := mgmt.Clientset()
	require.NoError(t, err)
	names := []string{"seoul", "busan", "daejeon"}
	modes := []string{"enforce", "enforce", "audit"}
	entry := func(i int, kubeconfig string) map[string]any {
		return map[string]any{"name": names[i], "kubeconfig": kubeconfig, "labels": map[string]any{"region": names[i], "policy-mode": modes[i]},
			"values": map[string]any{"replicas": i + 1}}
	}
	all := func() []map[string]any {
		var out []map[string]any
		for i, c := range clusters {
			out = append(out, entry(i, c.Kubeconfig))
		}
		return out
	}
	envs, state := t.TempDir(), t.TempDir()
	bin, fleet := fleetCLI(t, envs, state)
	registered := func() int {
		list, err := mcs.CoreV1().Secrets("argocd").List(ctx, metav1.ListOptions{LabelSelector: wellknown.MemberLabel})
		require.NoError(t, err)
		return len(list.Items)
	}

	// Bad input: refused before anything is registered.
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
		fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, bad.clusters)
		out, err := fleet("up")
		require.Error(t, err, out)
		assert.Contains(t, out, bad.want)
		assert.Zero(t, registered(), "nothing half-registered")
	}

	// An Argo CD that would fail every sync to the members' narrow credentials is refused too.
	setRespectRBAC := func(v string) {
		patch, _ := json.Marshal(map[string]any{"data": map[string]any{"resource.respectRBAC": v}})
		_, err := mcs.CoreV1().ConfigMaps("argocd").Patch(ctx, "argocd-cm", types.MergePatchType, patch, metav1.PatchOptions{})
		require.NoError(t, err)
	}
	setRespectRBAC("")
	fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, all())
	out, err := fleet("up")
	require.Error(t, err, out)
	assert.Contains(t, out, `argocd/argocd-cm has resource.respectRBAC "": set it to "normal"`)
	assert.Zero(t, registered(), "nothing half-registered")
	setRespectRBAC("normal")

	// Register -> health -> sync. busan runs an add-on the health check waits for.
	_, err = cs2.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kplane-system"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	one := int32(1)
	labels := map[string]string{"app": "agent"}
	_, err = cs2.AppsV1().Deployments("kplane-system").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "registry.example.com/agent" + rules.Digest}}}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	start := time.Now()
	out, err = fleet("run", "--batch", "2")
	require.NoError(t, err, out)
	t.Logf("kplane-fleet run (register 3, two waves, each synced by Argo CD) in %.1f s:\n%s", time.Since(start).Seconds(), out)
	assert.Contains(t, out, "wave 1 [seoul busan]: healthy, enabled, 4 applications synced and healthy")
	assert.Contains(t, out, "wave 2 [daejeon]: healthy, enabled, 2 applications synced and healthy")
	assert.Contains(t, out, "enabled: 3 of 3 clusters")

	// What Argo CD put on the members with their narrow credentials: one chart, values layered
	// common -> environment -> cluster, the policy parameters per cluster.
	for i, c := range clusters {
		cs, err := c.Clientset()
		require.NoError(t, err)
		dep, err := cs.AppsV1().Deployments("kplane-system").Get(ctx, "platform-agent", metav1.GetOptions{})
		require.NoError(t, err, names[i])
		assert.EqualValues(t, i+1, *dep.Spec.Replicas, "%s: the cluster's layer sets replicas", names[i])
		assert.Equal(t, []string{"--log-level=debug"}, dep.Spec.Template.Spec.Containers[0].Args, "%s: the environment's layer over common", names[i])
		assert.EqualValues(t, i+1, dep.Status.AvailableReplicas, "%s: available (the health check counts it)", names[i])
		settings, err := cs.CoreV1().ConfigMaps("kplane-system").Get(ctx, "platform-settings", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"logLevel": "debug", "tier": "standard", "replicas": fmt.Sprint(i + 1)}, settings.Data)
		params, err := cs.CoreV1().ConfigMaps("kplane-system").Get(ctx, "kplane-policy-parameters", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"cluster": names[i], "mode": modes[i], "environment": "test"}, params.Data)
		assert.True(t, strings.HasPrefix(dep.Annotations["argocd.argoproj.io/tracking-id"], fleetmember.ApplicationSetName("test")+"-"+names[i]+":"),
			"%s: tracked by its Application: %v", names[i], dep.Annotations)
	}

	// What registration made, and that Argo CD's credentials are narrow.
	for i := range clusters {
		secret, err := mcs.CoreV1().Secrets("argocd").Get(ctx, "kplane-cluster-"+names[i], metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "cluster", secret.Labels["argocd.argoproj.io/secret-type"])
		assert.Equal(t, "enabled", secret.Labels[wellknown.RolloutLabel])
		assert.Equal(t, names[i], secret.Labels["region"])
		assert.Contains(t, secret.Annotations[wellknown.ValuesAnnotation], "replicas:")
		entryIsNarrow(t, secret, "")
	}
	mdyn, err := mgmt.Dynamic()
	require.NoError(t, err)
	appset := get(t, mdyn, schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applicationsets"}, "argocd", fleetmember.ApplicationSetName("test"))
	raw, _ := json.Marshal(appset.Object["spec"])
	assert.Contains(t, string(raw), `"kplane.io/rollout":"enabled"`, "the ApplicationSet selects enabled members only")
	out, err = fleet("health", "--json")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"healthy": 3`)

	// A cluster stops: red within two intervals; the next rollout stops at its wave.
	watch := exec.CommandContext(ctx, bin, "health", "--env", "test", "--environments", envs, "--state", state, "--json", "--watch", "1s")
	pipe, err := watch.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, watch.Start())
	t.Cleanup(func() { _ = watch.Process.Kill(); _ = watch.Wait() })
	reports := make(chan []rollout.Health, 100)
	go func() {
		dec := json.NewDecoder(bufio.NewReader(pipe))
		for {
			var r struct{ Clusters []rollout.Health }
			if dec.Decode(&r) != nil {
				close(reports)
				return
			}
			reports <- r.Clusters
		}
	}()
	<-reports // one report while all run
	require.NoError(t, clusters[2].Stop())
	stopped := time.Now()
	var red *rollout.Health
	for n := 1; n <= 3 && red == nil; n++ {
		for _, h := range <-reports {
			if h.Cluster == "daejeon" && !h.Healthy {
				red = &h
				t.Logf("daejeon red in report %d after the stop (%.1f s): %s", n, time.Since(stopped).Seconds(), h.Reason)
				assert.LessOrEqual(t, n, 2, "red within two intervals")
			}
		}
	}
	require.NotNil(t, red, "daejeon turns red")
	out, err = fleet("rollout", "--batch", "1")
	require.Error(t, err, out)
	assert.Contains(t, out, "wave 3 [daejeon]: stopped, unhealthy: daejeon: API server not ready")
	assert.Contains(t, out, "enabled: 2 of 3 clusters")
	require.NoError(t, clusters[2].Start(ctx))
	out, err = fleet("rollout", "--batch", "1", "--resume")
	require.NoError(t, err, out)
	assert.Contains(t, out, "wave 4 [daejeon]: healthy, enabled, 2 applications synced and healthy")

	// A wave whose sync fails stops the rollout there: seoul's values break its Deployment, the
	// rollout enables seoul and stops, naming the Application and Argo CD's reason; fixed, it goes on.
	broken := all()
	broken[0]["values"] = map[string]any{"replicas": -1}
	fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, broken)
	out, err = fleet("up")
	require.NoError(t, err, out)
	out, err = fleet("rollout", "--batch", "1", "--sync-timeout", "30s")
	require.Error(t, err, out)
	t.Logf("a sync that fails:\n%s", out)
	assert.Contains(t, out, "wave 1 [seoul]: enabled, sync stopped: not synced and healthy after 30s: kplane-platform-test-seoul OutOfSync/")
	assert.Contains(t, out, "spec.replicas", "Argo CD's reason")
	assert.NotContains(t, out, "[busan]", "the next wave does not start")
	fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, all())
	out, err = fleet("up")
	require.NoError(t, err, out)
	out, err = fleet("rollout", "--batch", "3", "--resume")
	require.NoError(t, err, out)
	assert.Contains(t, out, "wave 2 [seoul busan daejeon]: healthy, enabled, 6 applications synced and healthy")
	assert.NotContains(t, out, "[seoul]", "resumed after the clusters already enabled")

	// Deregistering busan (removed from the environment) leaves nothing of kplane on it.
	fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, []map[string]any{entry(0, clusters[0].Kubeconfig), entry(2, clusters[2].Kubeconfig)})
	out, err = fleet("up")
	require.NoError(t, err, out)
	noKplaneOn(t, clusters[1])
	_, err = mcs.CoreV1().Secrets("argocd").Get(ctx, "kplane-cluster-busan", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "its Argo CD entry is gone: %v", err)
	apps := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
	require.Eventually(t, func() bool {
		_, err := mdyn.Resource(apps).Namespace("argocd").Get(ctx, fleetmember.ApplicationSetName("test")+"-busan", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 60*time.Second, time.Second, "the ApplicationSet removed busan's Application")
	out, err = fleet("down", "--yes")
	require.NoError(t, err, out)
	assert.Zero(t, registered())
	noKplaneOn(t, clusters[2])
}

func fleetCLI(t *testing.T, envs, state string) (string, func(args ...string) (string, error)) {
	bin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-fleet")
	return bin, func(args ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), bin, append([]string{args[0], "--env", "test", "--environments", envs, "--state", state, "--sync-timeout", "3m"}, args[1:]...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// entryIsNarrow: the Argo CD cluster entry's credentials, used directly (at server, when the
// entry's own is the in-cluster address), may deploy into the platform namespace and do nothing
// else.
func entryIsNarrow(t *testing.T, secret *corev1.Secret, server string) {
	t.Helper()
	ctx := context.Background()
	name := string(secret.Data["name"])
	assert.Equal(t, "kplane-system", string(secret.Data["namespaces"]))
	assert.Equal(t, "false", string(secret.Data["clusterResources"]))
	var conf struct {
		BearerToken     string `json:"bearerToken"`
		TLSClientConfig struct {
			CAData []byte `json:"caData"`
		} `json:"tlsClientConfig"`
	}
	require.NoError(t, json.Unmarshal(secret.Data["config"], &conf))
	argo, err := k8sclient.NewForConfig(&rest.Config{Host: cmp.Or(server, string(secret.Data["server"])), BearerToken: conf.BearerToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: conf.TLSClientConfig.CAData}})
	require.NoError(t, err)
	_, err = argo.AppsV1().Deployments("kplane-system").List(ctx, metav1.ListOptions{})
	assert.NoError(t, err, "%s: Argo CD may deploy into the platform namespace", name)
	_, err = argo.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "%s: and nothing else: %v", name, err)
	_, err = argo.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "%s: nothing cluster-wide: %v", name, err)
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
	}, 60*time.Second, time.Second, "namespaces (kplane-fleet and the platform's) deleted")
	crs, err := cs.RbacV1().ClusterRoles().List(ctx, sel)
	require.NoError(t, err)
	assert.Empty(t, crs.Items, "cluster roles")
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
