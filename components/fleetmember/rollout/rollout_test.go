package rollout

import (
	"bytes"
	"context"
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

func TestReports(t *testing.T) {
	hs := []Health{{Cluster: "seoul", Healthy: true, Version: "v1.37.2", Nodes: 2, NodesReady: 2, Seconds: 0.012},
		{Cluster: "busan", Reason: "API server not ready: connection refused", Seconds: 0.001}}
	var table, js bytes.Buffer
	require.NoError(t, WriteTable(&table, hs))
	assert.Contains(t, table.String(), "busan    RED")
	require.NoError(t, WriteJSON(&js, hs))
	assert.Contains(t, js.String(), `"healthy": 1`)
}

// TestCheckTimesItself: a check records how long it took, healthy or not.
func TestCheckTimesItself(t *testing.T) {
	h := Check(t.Context(), Cluster{Name: "nowhere", Kubeconfig: "/nonexistent"}, time.Second)
	assert.False(t, h.Healthy)
	assert.Contains(t, h.Reason, "kubeconfig /nonexistent")
	assert.Greater(t, h.Seconds, 0.0)
}

// TestSyncGateLook: what the gate reads of Argo CD's Applications, and why a wave would stop.
func TestSyncGateLook(t *testing.T) {
	app := func(name, sync, health string, extra map[string]any) *unstructured.Unstructured {
		status := map[string]any{"sync": map[string]any{"status": sync}, "health": map[string]any{"status": health}}
		maps.Copy(status, extra)
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": name, "namespace": "argocd"}, "status": status}}
	}
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{applications: "ApplicationList"},
		app("kplane-platform-prod-seoul", "Synced", "Healthy", nil),
		app("kplane-policies-prod-seoul", "Synced", "Healthy", nil),
		app("kplane-platform-prod-busan", "OutOfSync", "Missing", map[string]any{"conditions": []any{map[string]any{"type": "ComparisonError",
			"message": "Failed to load target state: helm template: values/prod.yaml not found\nmore"}}}),
		app("kplane-policies-prod-busan", "Synced", "Degraded", map[string]any{"operationState": map[string]any{"phase": "Failed",
			"message": "one or more objects failed to apply"}}),
		app("kplane-platform-prod-ulsan", "Synced", "Degraded", map[string]any{"resources": []any{
			map[string]any{"kind": "Deployment", "namespace": "istio-system", "name": "istiod", "health": map[string]any{"status": "Healthy"}},
			map[string]any{"kind": "HorizontalPodAutoscaler", "namespace": "istio-system", "name": "istiod", "health": map[string]any{"status": "Degraded", "message": "the HPA was unable to compute the replica count"}},
			map[string]any{"kind": "Service", "namespace": "istio-ingress", "name": "ingress", "health": map[string]any{"status": "Progressing"}}}}),
	)
	g := &SyncGate{Applications: dyn, Timeout: 50 * time.Millisecond, Interval: 10 * time.Millisecond}
	sets := []string{"kplane-platform-prod", "kplane-policies-prod"}
	apps, err := g.wait(context.Background(), "argocd", sets, []Cluster{{Name: "seoul"}})
	require.NoError(t, err)
	assert.Len(t, apps, 2)
	_, err = g.wait(context.Background(), "argocd", sets, []Cluster{{Name: "seoul"}, {Name: "busan"}, {Name: "daejeon"}, {Name: "jeju", Pull: true, Kubeconfig: "/nonexistent"}, {Name: "ulsan"}})
	require.Error(t, err)
	for _, want := range []string{
		"kplane-platform-prod-busan OutOfSync/Missing: Failed to load target state: helm template: values/prod.yaml not found;",
		"kplane-policies-prod-busan Synced/Degraded: one or more objects failed to apply",
		"kplane-platform-prod-daejeon not generated/-", "kplane-policies-prod-daejeon not generated/-",
		"kplane-platform-prod-jeju not generated/-: cluster jeju: kubeconfig /nonexistent",
		"kplane-platform-prod-ulsan Synced/Degraded: HorizontalPodAutoscaler istio-system/istiod (Degraded: the HPA was unable to compute the replica count), Service istio-ingress/ingress (Progressing)"} { // a pull member's are read on the member
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "seoul", "only what is not done")
}
