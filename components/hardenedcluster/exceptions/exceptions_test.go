package exceptions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestExpire(t *testing.T) {
	vap := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
		"metadata": map[string]any{"name": "kplane-read-only-root"},
		"spec": map[string]any{"matchConditions": []any{
			map[string]any{"name": "spec-changed", "expression": "true"},
			map[string]any{"name": "exception-0-expires-2026-12-06", "expression": "a"},
			map[string]any{"name": "exception-1-expires-2026-12-07", "expression": "b"},
		}}}}
	constraint := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "KplaneHostPath",
		"metadata": map[string]any{"name": "kplane-host-path"},
		"spec": map[string]any{"parameters": map[string]any{"exceptions": []any{
			map[string]any{"namespace": "db", "workload": "backup", "expires": "2026-12-06"},
		}}}}}
	gvrs := map[schema.GroupVersionResource]string{
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}: "ValidatingAdmissionPolicyList",
		{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Resource: "kplanehostpath"}:            "KplaneHostPathList",
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), gvrs, vap)
	ctx := context.Background()
	// Gatekeeper's constraint resources are the kind in lower case (no plural s).
	_, err := dyn.Resource(schema.GroupVersionResource{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Resource: "kplanehostpath"}).
		Create(ctx, constraint, metav1.CreateOptions{})
	require.NoError(t, err)
	targets := []Target{ParseTarget("kplane-read-only-root"), ParseTarget("kplanehostpath/kplane-host-path")}

	removed, err := Expire(ctx, dyn, targets, time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	assert.Empty(t, removed, "an exception applies through its last day")

	// The API server writes a policy's status meanwhile: the first update conflicts, the retry reads it again.
	conflicts := 0
	dyn.PrependReactor("update", "validatingadmissionpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts++; conflicts == 1 {
			return true, nil, apierrors.NewConflict(policies.GroupResource(), "kplane-read-only-root", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	removed, err = Expire(ctx, dyn, targets, time.Date(2026, 12, 7, 0, 5, 0, 0, time.UTC))
	assert.Equal(t, 2, conflicts, "retried after the conflict")
	require.NoError(t, err)
	assert.Equal(t, []string{"kplane-read-only-root: exception expired on 2026-12-06 (exception-0-expires-2026-12-06)",
		"kplane-host-path: exception expired on 2026-12-06 (db/backup)"}, removed)
	got, err := dyn.Resource(policies).Get(ctx, "kplane-read-only-root", metav1.GetOptions{})
	require.NoError(t, err)
	conditions, _, _ := unstructured.NestedSlice(got.Object, "spec", "matchConditions")
	assert.Len(t, conditions, 2, "spec-changed and the exception still in force stay")

	_, err = Expire(ctx, dyn, []Target{{Name: "absent"}}, time.Now())
	assert.ErrorContains(t, err, "validatingadmissionpolicies absent")
}
