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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/components/fleetmember/rollout"
	"github.com/kplane/kplane/components/wellknown"
	fleetstack "github.com/kplane/kplane/stacks/fleet"
	"github.com/kplane/kplane/tests/testbed"
)

// fleetEnv writes environments/<env>/fleet.yaml for the clusters, the members' renders in the
// Git repository repoURL at revision; and environments/<env>/platform.yaml, the environment's
// layer of the platform the members' values lie over (fleetPlatform).
func fleetEnv(t *testing.T, dir, env, management, repoURL, revision string, clusters []map[string]any) {
	t.Helper()
	writeFleetEnv(t, dir, env, map[string]any{"environment": env, "management": management,
		"platform": map[string]any{"repoURL": repoURL, "revision": revision}, "clusters": clusters})
	require.NoError(t, os.WriteFile(filepath.Join(dir, env, "platform.yaml"), []byte(strings.ReplaceAll(fleetPlatform, "ENV", env)), 0o600))
}

// fleetPlatform is the test environment's platform: the hardened cluster with a team's namespace,
// a service whose Role reads ConfigMaps, and admission policies enforcing kplane's baseline with
// images from registry.example.com only.
const fleetPlatform = `config:
  kplane:environment: ENV
  kplane:security:
    admission: {mode: enforce, allowedRegistries: [registry.example.com/]}
    teams: [{name: payments, namespaces: [payments]}]
    services:
      - name: ledger
        namespace: payments
        rules: [{resources: [configmaps], verbs: [get, list, watch]}]
`

// writeFleetEnv writes environments/<env>/fleet.yaml with fleet as kplane:fleet.
func writeFleetEnv(t *testing.T, dir, env string, fleet map[string]any) {
	t.Helper()
	raw, err := yaml.Marshal(map[string]any{"config": map[string]any{"kplane:fleet": fleet}})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, env), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, env, "fleet.yaml"), raw, 0o600))
}

// renderAndPush runs `kplane-fleet render` in the checkout and pushes what it rendered
// (rendered/...) to the Git server's repository platform, tagged tag, as a merged pull request
// would; it returns the repository's URL.
func renderAndPush(t *testing.T, fleet func(...string) (string, error), git *testbed.GitServer, checkout, tag string) string {
	t.Helper()
	start := time.Now()
	out, err := fleet("render")
	require.NoError(t, err, out)
	t.Logf("kplane-fleet render in %.1f s:\n%s", time.Since(start).Seconds(), out)
	return git.Push(t, "platform", tag, renderedFiles(t, checkout))
}

// renderedFiles are the checkout's rendered/ files (path in the repository -> content).
func renderedFiles(t *testing.T, checkout string) map[string]string {
	t.Helper()
	rendered, err := fleetstack.RenderedFiles(filepath.Join(checkout, fleetmember.DefaultRenderedPath))
	require.NoError(t, err)
	files := map[string]string{}
	for rel, body := range rendered {
		files[fleetmember.DefaultRenderedPath+"/"+rel] = string(body)
	}
	return files
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

// TestFleet: three real clusters, the first also the management cluster running Argo CD's own
// controllers (repo-server, application and ApplicationSet controllers of its release) and a
// real Git server. `kplane-fleet render` renders each member's platform (the environment's file
// with the member's values over it) and the render is pushed. Bad input (a duplicate name, an
// unreachable cluster, a kubeconfig without rights, an Argo CD that would not respect RBAC or
// impersonate) is refused with nothing registered. `kplane-fleet run` registers all three (the
// credentials verified by using them) and enables them in waves, each waiting until Argo CD has
// synced the member's platform and admission policies as their two deployers: each member then
// denies a privileged pod (enforce) or only warns (daejeon: audit, its values). A stopped cluster
// turns red and stops the next rollout at its wave, which resumes once it is back; a render that
// fails to sync stops its wave with Argo CD's reason; removing a cluster from the environment
// leaves nothing of kplane's registration on it and removes its Applications; `down`
// deregisters all.
func TestFleet(t *testing.T) {
	integration(t)
	ctx := context.Background()
	// Argo CD keeps watches open on the members: a member's API server that is stopped drains
	// them (within 5 s) instead of waiting for them to end.
	clusters := testbed.StartN(t, 3, testbed.Options{Nodes: 1, APIServerArgs: []string{"--shutdown-watch-termination-grace-period=5s"}})
	mgmt := clusters[0]
	git := testbed.StartGitServer(t, t.TempDir())
	mcs, err := mgmt.Clientset()
	require.NoError(t, err)
	names := []string{"seoul", "busan", "daejeon"}
	modes := []string{"enforce", "enforce", "audit"}
	entry := func(i int, kubeconfig string) map[string]any {
		e := map[string]any{"name": names[i], "kubeconfig": kubeconfig, "labels": map[string]any{"region": names[i]}}
		if modes[i] == "audit" {
			e["values"] = map[string]any{"security": map[string]any{"admission": map[string]any{"mode": "audit"}}}
		}
		return e
	}
	all := func() []map[string]any {
		var out []map[string]any
		for i, c := range clusters {
			out = append(out, entry(i, c.Kubeconfig))
		}
		return out
	}
	envs, state, checkout := t.TempDir(), t.TempDir(), t.TempDir()
	bin, fleet := fleetCLI(t, checkout, envs, state)
	fleetEnv(t, envs, "test", mgmt.Kubeconfig, "https://git.example.com/platform.git", "v1.4.0", all())
	repoURL := renderAndPush(t, fleet, git, checkout, "v1.4.0")
	out, err := fleet("render", "--check")
	require.NoError(t, err, "a fresh render equals the committed one (deterministic): %s", out)
	assert.Regexp(t, `cluster seoul: \d+ objects \(\d+ platform kinds, 2 policy kinds, 1 namespaces\) rendered`, out)
	assert.Regexp(t, `cluster busan: \d+ objects .* the same as seoul's`, out, "busan has seoul's values and APIs: rendered once")
	assert.Regexp(t, `cluster daejeon: \d+ objects .* rendered in`, out, "daejeon's values differ")
	startArgoCD(t, mgmt, "Argo CD's", testbed.ArgoCDOptions{TrustedCAs: map[string][]byte{"127.0.0.1": git.CA}})
	registered := func() int {
		list, err := mcs.CoreV1().Secrets("argocd").List(ctx, metav1.ListOptions{LabelSelector: wellknown.MemberLabel})
		require.NoError(t, err)
		return len(list.Items)
	}
	badInputRegistersNothing(t, clusters, fleet, entry, registered, func(cs []map[string]any) { fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, "v1.4.0", cs) })
	fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, "v1.4.0", all())

	// Register -> health -> sync.
	start := time.Now()
	out, err = fleet("run", "--batch", "2")
	require.NoError(t, err, out)
	t.Logf("kplane-fleet run (register 3, two waves, each synced by Argo CD) in %.1f s:\n%s", time.Since(start).Seconds(), out)
	assert.Contains(t, out, "wave 1 [seoul busan]: healthy, enabled, 4 applications synced and healthy")
	assert.Contains(t, out, "wave 2 [daejeon]: healthy, enabled, 2 applications synced and healthy")
	assert.Contains(t, out, "enabled: 3 of 3 clusters")

	// What Argo CD put on the members: the platform, and its policies in each member's mode.
	for i, c := range clusters {
		memberHoldsThePlatform(t, c, names[i], modes[i])
		secret, err := mcs.CoreV1().Secrets("argocd").Get(ctx, "kplane-cluster-"+names[i], metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "cluster", secret.Labels["argocd.argoproj.io/secret-type"])
		assert.Equal(t, "enabled", secret.Labels[wellknown.RolloutLabel])
		assert.Equal(t, names[i], secret.Labels["region"])
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
	watch.Dir = checkout
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

	// A wave whose sync fails stops the rollout there: a revision whose render of seoul the API
	// server refuses; the rollout enables seoul and stops, naming the Application and Argo CD's
	// reason; with the next revision (a fresh render) it goes on.
	path := filepath.Join(checkout, fleetmember.DefaultRenderedPath, "test", "seoul", "platform", "v1-namespace-default-payments.yaml")
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(good), "name: payments", "name: Payments_Broken", 1)), 0o600))
	git.Push(t, "platform", "v1.4.1", renderedFiles(t, checkout))
	out, err = fleet("render", "--check")
	require.Error(t, err, out)
	assert.Contains(t, out, "the committed render of seoul differs from the environment's: run `kplane-fleet render --env test` and commit rendered", "the pull-request check sees a hand edit")
	fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, "v1.4.1", all())
	out, err = fleet("up")
	require.NoError(t, err, out)
	out, err = fleet("rollout", "--batch", "1", "--sync-timeout", "30s")
	require.Error(t, err, out)
	t.Logf("a sync that fails:\n%s", out)
	assert.Contains(t, out, "wave 1 [seoul]: enabled, sync stopped: not synced and healthy after 30s: kplane-platform-test-seoul ")
	assert.Contains(t, out, "Payments_Broken", "Argo CD's reason")
	assert.NotContains(t, out, "[busan]", "the next wave does not start")
	renderAndPush(t, fleet, git, checkout, "v1.4.2")
	fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, "v1.4.2", all())
	out, err = fleet("up")
	require.NoError(t, err, out)
	out, err = fleet("rollout", "--batch", "3", "--resume")
	require.NoError(t, err, out)
	assert.Contains(t, out, "wave 2 [seoul busan daejeon]: healthy, enabled, 6 applications synced and healthy")
	assert.NotContains(t, out, "[seoul]", "resumed after the clusters already enabled")

	// Deregistering busan (removed from the environment) leaves nothing of kplane's registration
	// on it; the platform it runs stays (deregistering stops managing a cluster, it does not
	// uninstall its platform).
	fleetEnv(t, envs, "test", mgmt.Kubeconfig, repoURL, "v1.4.2", []map[string]any{entry(0, clusters[0].Kubeconfig), entry(2, clusters[2].Kubeconfig)})
	out, err = fleet("render", "--check")
	require.Error(t, err, out)
	assert.Contains(t, out, "the committed render of busan (no longer a member) differs", "a departed member's render is stale too")
	out, err = fleet("up")
	require.NoError(t, err, out)
	noKplaneOn(t, clusters[1])
	bcs, err := clusters[1].Clientset()
	require.NoError(t, err)
	_, err = bcs.CoreV1().Namespaces().Get(ctx, "payments", metav1.GetOptions{})
	assert.NoError(t, err, "busan keeps its platform")
	_, err = mcs.CoreV1().Secrets("argocd").Get(ctx, "kplane-cluster-busan", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "its Argo CD entry is gone: %v", err)
	apps := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
	require.Eventually(t, func() bool {
		for _, set := range []string{fleetmember.ApplicationSetName("test"), fleetmember.PolicyApplicationSetName("test")} {
			if _, err := mdyn.Resource(apps).Namespace("argocd").Get(ctx, set+"-busan", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false
			}
		}
		return true
	}, 60*time.Second, time.Second, "the ApplicationSets removed busan's Applications")
	out, err = fleet("down", "--yes")
	require.NoError(t, err, out)
	assert.Zero(t, registered())
	noKplaneOn(t, clusters[2])
	for _, res := range []string{"applications", "applicationsets", "appprojects"} {
		list, err := mdyn.Resource(schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: res}).Namespace("argocd").List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		assert.Empty(t, list.Items, "nothing of the fleet's %s left on the management cluster", res)
	}
}

// fleetCLI builds kplane-fleet and returns it and a runner of its verbs on the environment "test"
// of envs, in checkout (the platform repository's checkout: renders go to, and are read from,
// its rendered/); a wave waits at most 3 minutes for its sync unless args say otherwise.
func fleetCLI(t *testing.T, checkout, envs, state string) (string, func(args ...string) (string, error)) {
	bin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-fleet")
	return bin, func(args ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), bin, append([]string{args[0], "--env", "test", "--environments", envs, "--state", state, "--sync-timeout", "3m"}, args[1:]...)...)
		cmd.Dir = checkout
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}
