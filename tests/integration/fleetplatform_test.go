package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/tests/testbed"
)

// TestFleetPlatform: the composed platform through the fleet. The member's render is the dev
// environment's whole platform (the hardened cluster, identity, mesh with Istio's charts, gateway,
// backup) with the member's values over it; Argo CD syncs it from Git as the platform's deployer
// and its admission policies as the policies' deployer, and the wave waits until both are Synced
// and Healthy; the member then runs the platform the environment file describes, and its
// admission policies deny a privileged pod for real.
func TestFleetPlatform(t *testing.T) {
	integration(t)
	ctx := context.Background()
	clusters := testbed.StartN(t, 2, testbed.Options{Nodes: 1})
	mgmt, seoul := clusters[0], clusters[1]
	// The backup store beside the member, as `make up` starts it for dev, and Velero's CRDs (the
	// render reads the member's APIs).
	s3URL := testbed.S3(t, "kplane-dev")
	require.NoError(t, testbed.InstallVelero(ctx, seoul))
	scs, err := seoul.Clientset()
	require.NoError(t, err)
	_, err = scs.CoreV1().Secrets("velero").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kplane-backup-s3"},
		StringData: map[string]string{"cloud": "[default]\naws_access_key_id=kplane\naws_secret_access_key=kplane-secret\n"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	git := testbed.StartGitServer(t, t.TempDir())
	envs, state, checkout := t.TempDir(), t.TempDir(), t.TempDir()
	_, fleet := fleetCLI(t, checkout, envs, state)
	dev, err := os.ReadFile("../../environments/dev/platform.yaml")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(envs, "test"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(envs, "test", "platform.yaml"), []byte(strings.Replace(string(dev), "kplane:environment: dev", "kplane:environment: test", 1)), 0o600))
	specs, err := filepath.Abs("../../environments/apis")
	require.NoError(t, err)
	env := func(repoURL string) {
		writeFleetEnv(t, envs, "test", map[string]any{"environment": "test", "management": mgmt.Kubeconfig,
			"platform": map[string]any{"repoURL": repoURL, "revision": "v2.0.0"},
			"clusters": []map[string]any{{"name": "seoul", "kubeconfig": seoul.Kubeconfig, "labels": map[string]any{"region": "seoul"},
				// the member's layer over dev's file: where this checkout keeps the APIs' specs, and
				// its backup store
				"values": map[string]any{"gateway": map[string]any{"specsDir": specs}, "backup": map[string]any{"storage": map[string]any{"url": s3URL}}}}}})
	}
	env("https://git.example.com/platform.git")
	repoURL := renderAndPush(t, fleet, git, checkout, "v2.0.0")
	env(repoURL)
	r, err := fleetmember.LoadRendered(filepath.Join(checkout, fleetmember.DefaultRenderedPath), "test", "seoul")
	require.NoError(t, err)
	t.Logf("seoul's render: %d objects, %d platform kinds, %d policy kinds, namespaces %v", r.Objects, len(r.Platform), len(r.Policies), r.Namespaces)
	for _, ns := range []string{"istio-system", "kplane-gateway", "payments", "web"} {
		assert.Contains(t, r.Namespaces, ns)
	}
	startArgoCD(t, mgmt, "Argo CD's", testbed.ArgoCDOptions{TrustedCAs: map[string][]byte{"127.0.0.1": git.CA}})

	// Velero's server, which Argo CD waits for to accept the platform's schedules (one at a
	// time in this process: taken late, as other tests run theirs).
	velero, err := testbed.StartVelero(ctx, seoul, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(velero.Stop)
	start := time.Now()
	out, err := fleet("run", "--sync-timeout", "5m")
	require.NoError(t, err, out)
	t.Logf("kplane-fleet run, the composed platform synced by Argo CD in %.1f s:\n%s", time.Since(start).Seconds(), out)
	assert.Contains(t, out, "wave 1 [seoul]: healthy, enabled, 2 applications synced and healthy")

	// What `pulumi up` of the environment puts on a cluster, Argo CD put on seoul (the composed
	// platform test's checks), with seoul's own values.
	dc, err := seoul.Dynamic()
	require.NoError(t, err)
	checkMesh(t, dc)
	checkIdentity(t, dc)
	checkBackup(t, dc)
	url, _, _ := unstructured.NestedString(get(t, dc, gvrBSL, "velero", "default").Object, "spec", "config", "s3Url")
	assert.Equal(t, s3URL, url, "seoul's value over dev's")
	memberHoldsThePlatform(t, seoul, "seoul", "enforce")
	out, err = fleet("down", "--yes")
	require.NoError(t, err, out)
	noKplaneOn(t, seoul)
}
