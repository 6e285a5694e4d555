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

	"github.com/kplane/kplane/tests/testbed"
)

// TestGatekeeperManagerRestarts: the test bed's Gatekeeper manager may start before the chart's
// CRDs exist (Pulumi creates a chart's objects at once; under load the controller-manager pod
// can come first). It exits then, and is started again, as the kubelet restarts a pod, until the
// CRDs are there and it is ready.
func TestGatekeeperManagerRestarts(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	cs, err := c.Clientset()
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gatekeeper-system"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	gk, err := testbed.NewGatekeeper(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(gk.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	module := "github.com/open-policy-agent/gatekeeper/v3@" + pinned(t, "GATEKEEPER_VERSION")
	crds, err := filepath.Glob(filepath.Join(moduleDir(t, module), "charts/gatekeeper/crds/*.yaml"))
	require.NoError(t, err)
	const templates = "constrainttemplate-customresourcedefinition.yaml"
	require.Contains(t, crds, filepath.Join(moduleDir(t, module), "charts/gatekeeper/crds", templates))
	for _, crd := range crds { // every CRD but the templates' (what Pulumi had not created yet)
		if filepath.Base(crd) != templates {
			upstreamCRD(t, c, module, "charts/gatekeeper/crds/"+filepath.Base(crd))
		}
	}
	started := make(chan error, 1)
	go func() { started <- gk.Start(ctx, c, "gatekeeper-system", "gatekeeper-controller-manager-0", 60) }()
	require.Eventually(t, func() bool { // its upgrade step finds no ConstraintTemplate CRD: the manager exits
		raw, _ := os.ReadFile(gk.Log)
		return gk.Starts > 1 || strings.Contains(string(raw), "required crd has not been deployed")
	}, 2*time.Minute, 200*time.Millisecond)
	upstreamCRD(t, c, module, "charts/gatekeeper/crds/"+templates)
	require.NoError(t, <-started, "the manager is ready once its CRDs exist")
	assert.Greater(t, gk.Starts, 1, "it exited without its CRDs and was started again")
}
