package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/tests/testbed"
)

// TestGatekeeperEnforces: the Gatekeeper engine for real. The component installs the official
// chart (from the Go module of the pinned release: the same files the chart repository
// serves), its templates and constraints; the real Gatekeeper manager plays the chart's pod (KWOK
// only fakes it) with its webhook on loopback. The shared baseline scenario then runs through
// Gatekeeper's webhook, its audit reports an object that predates the policies, a second up
// changes nothing, and destroy leaves the cluster clean.
func TestGatekeeperEnforces(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	ctx := context.Background()
	dc, err := c.Dynamic()
	require.NoError(t, err)

	gk, err := testbed.NewGatekeeper(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() {
		gk.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(gk.Log)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("gatekeeper log (%s), last lines:\n%s", gk.Log, b)
		}
	})

	// A workload that predates the policies, outside the team namespaces: audit must find it.
	stray, gvr := workloadObject("Deployment", "default", "predates-policies", rules.GoodPodSpec())
	_, err = dc.Resource(gvr).Namespace("default").Create(ctx, stray, k8smeta.CreateOptions{})
	require.NoError(t, err)

	b := baseline{prefix: "gk"}
	args := b.args()
	args.Admission.Engine = "gatekeeper"
	args.Admission.Gatekeeper.Chart.Path = moduleDir(t, "github.com/open-policy-agent/gatekeeper/v3@"+pinned(t, "GATEKEEPER_VERSION")) + "/charts/gatekeeper"
	args.Admission.Gatekeeper.Values = map[string]any{"validatingWebhookURL": gk.Addr, "replicas": 1}
	s := hardenedStack(t, c, "gatekeeper", args, b.setup)

	// The manager starts as soon as the chart's controller-manager pod exists: it compiles the
	// templates into constraint kinds while `up` goes on to create the constraints.
	started := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		for {
			pods, err := dc.Resource(gvrPod).Namespace("gatekeeper-system").List(pctx, k8smeta.ListOptions{LabelSelector: "control-plane=controller-manager"})
			if err == nil && len(pods.Items) > 0 {
				started <- gk.Start(pctx, c, "gatekeeper-system", pods.Items[0].GetName(), 2)
				return
			}
			select {
			case <-pctx.Done():
				started <- fmt.Errorf("no controller-manager pod: %w", pctx.Err())
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	up, err := s.Up(ctx)
	require.NoError(t, err)
	require.NoError(t, <-started)
	t.Logf("up with Gatekeeper (chart, %d templates and constraints) in %.1f s", len(up.Outputs["admissionPolicies"].Value.([]any)), time.Since(t0).Seconds())

	// What Gatekeeper's certificate controller does in a cluster: put the webhook's CA in place.
	ca := base64.StdEncoding.EncodeToString(gk.CA)
	patch := fmt.Sprintf(`[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":%q},{"op":"add","path":"/webhooks/1/clientConfig/caBundle","value":%q}]`, ca, ca)
	webhooks := schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}
	_, err = dc.Resource(webhooks).Patch(ctx, "gatekeeper-validating-webhook-configuration", types.JSONPatchType, []byte(patch), k8smeta.PatchOptions{})
	require.NoError(t, err)
	hook := get(t, dc, webhooks, "", "gatekeeper-validating-webhook-configuration")
	hooks, _, _ := unstructured.NestedSlice(hook.Object, "webhooks")
	assert.Equal(t, "Fail", hooks[0].(map[string]any)["failurePolicy"], "the webhook fails closed in enforce mode")

	constraints := schema.GroupVersionResource{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Resource: "kplanereadonlyroot"}
	ro := get(t, dc, constraints, "", "kplane-read-only-root")
	exceptions, _, _ := unstructured.NestedSlice(ro.Object, "spec", "parameters", "exceptions")
	require.Len(t, exceptions, 2, "the expired exception is not applied (legacy-* and cache are)")
	assert.Equal(t, "writes to /tmp until v2", exceptions[0].(map[string]any)["reason"], "active exceptions stay listed with their reason")

	b.check(t, dc)
	debugRefused(t, dc, b.apps())

	t.Run("audit", func(t *testing.T) {
		nsConstraint := schema.GroupVersionResource{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Resource: "kplaneallowednamespaces"}
		require.Eventually(t, func() bool {
			obj := get(t, dc, nsConstraint, "", "kplane-allowed-namespaces")
			violations, _, _ := unstructured.NestedSlice(obj.Object, "status", "violations")
			for _, v := range violations {
				m := v.(map[string]any)
				if m["name"] == "predates-policies" && m["namespace"] == "default" {
					return true
				}
			}
			return false
		}, 90*time.Second, time.Second, "Gatekeeper's audit reports the Deployment that predates the policies")
	})

	again, err := s.Up(ctx)
	require.NoError(t, err)
	changed := *again.Summary.ResourceChanges
	assert.Zero(t, changed["create"]+changed["update"]+changed["replace"]+changed["delete"], "a second up changes nothing (the injected caBundle is not drift): %v", changed)
	expireExceptions(t, c, dc, b.apps(), "kplane-read-only-root")

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	gone(t, dc, webhooks, "", "gatekeeper-validating-webhook-configuration")
	gone(t, dc, gvrNamespace, "", "gatekeeper-system")
	gone(t, dc, gvrNamespace, "", b.apps())
	noKplaneObjects(t, dc)
}
