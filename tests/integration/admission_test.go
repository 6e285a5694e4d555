package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

// workloadObject is a fixtures.Workload as an API object with its resource.
func workloadObject(kind, ns, name string, spec map[string]any) (*unstructured.Unstructured, schema.GroupVersionResource) {
	obj, group, resource := fixtures.Workload(kind, ns, name, spec)
	return &unstructured.Unstructured{Object: obj}, schema.GroupVersionResource{Group: group, Version: "v1", Resource: resource}
}

// TestAdmissionBaseline: the hardened-cluster policies run in the real API server's admission
// path; bad workloads are refused at apply time with the policy, the field and the fix; the
// ordinary set (web Deployment, StatefulSet database, CronJob, DaemonSet agent in an exempt
// namespace) is admitted; an exception admits its one workload; an expired one does not.
func TestAdmissionBaseline(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	ctx := context.Background()
	agents := func(ctx *pulumi.Context, k8s pulumi.ProviderResource) ([]pulumi.Resource, error) {
		ns, err := corev1.NewNamespace(ctx, "agents", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("adm-agents")}}, pulumi.Provider(k8s))
		return []pulumi.Resource{ns}, err
	}
	exceptions := []hardenedcluster.Exception{
		{Policy: "kplane-read-only-root", Namespace: "adm-apps", Workload: "legacy", Reason: "writes to /tmp until v2", Expires: "2099-12-31"},
		{Policy: "kplane-read-only-root", Namespace: "adm-apps", Workload: "old", Reason: "ended", Expires: "2020-01-01"},
	}
	// Some violations break a second policy by necessity (API validation: a privileged container
	// cannot set allowPrivilegeEscalation: false): that policy is excepted for the fixture's
	// workload, to see the policy under test answer.
	for _, v := range fixtures.Violations() {
		if v.Also != "" {
			exceptions = append(exceptions, hardenedcluster.Exception{Policy: v.Also, Namespace: "adm-apps", Workload: v.Name, Reason: "test isolation", Expires: "2099-12-31"})
		}
	}
	s := hardenedStack(t, c, "admission", &hardenedcluster.Args{
		PodSecurityVersion: "v1.37",
		Teams:              []hardenedcluster.Team{{Name: "apps", Namespaces: []string{"adm-apps"}}},
		Admission: hardenedcluster.AdmissionArgs{
			AllowedRegistries: []string{"registry.example.com/"},
			ExemptNamespaces:  []string{"adm-agents"},
			Exceptions:        exceptions,
		},
	}, agents)
	up, err := s.Up(ctx)
	require.NoError(t, err)
	dc, err := c.Dynamic()
	require.NoError(t, err)

	vap := get(t, dc, schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}, "", "kplane-read-only-root")
	assert.Contains(t, vap.GetAnnotations()["kplane.io/exceptions"], `"reason":"writes to /tmp until v2"`, "active exceptions stay listed on the policy")
	assert.NotContains(t, vap.GetAnnotations()["kplane.io/exceptions"], `"workload":"old"`, "expired exceptions are not applied")
	assert.Contains(t, up.StdOut+up.StdErr, "expired on 2020-01-01 and no longer applies")

	dryRun := k8smeta.CreateOptions{DryRun: []string{"All"}}
	for _, v := range fixtures.Violations() {
		t.Run("denied/"+v.Name, func(t *testing.T) {
			spec := fixtures.GoodPodSpec()
			v.Mutate(spec)
			obj, gvr := workloadObject("Deployment", "adm-apps", v.Name, spec)
			refused(t, func() error { _, err := dc.Resource(gvr).Namespace("adm-apps").Create(ctx, obj, dryRun); return err }, v.Policy+": "+v.Want)
		})
	}
	t.Run("denied/expired exception", func(t *testing.T) {
		spec := fixtures.GoodPodSpec()
		delete(fixtures.SC(spec), "readOnlyRootFilesystem")
		obj, gvr := workloadObject("Deployment", "adm-apps", "old-app", spec)
		refused(t, func() error { _, err := dc.Resource(gvr).Namespace("adm-apps").Create(ctx, obj, dryRun); return err },
			"kplane-read-only-root: container app: securityContext.readOnlyRootFilesystem must be true")
	})
	t.Run("denied/cronjob", func(t *testing.T) {
		spec := fixtures.GoodPodSpec()
		fixtures.SC(spec)["privileged"] = true
		delete(fixtures.SC(spec), "allowPrivilegeEscalation")
		obj, gvr := workloadObject("CronJob", "adm-apps", "privileged-nightly", spec)
		refused(t, func() error { _, err := dc.Resource(gvr).Namespace("adm-apps").Create(ctx, obj, dryRun); return err }, "kplane-no-privileged: container app")
	})
	t.Run("denied/outside team namespaces", func(t *testing.T) {
		obj, gvr := workloadObject("Deployment", "default", "stray", fixtures.GoodPodSpec())
		refused(t, func() error { _, err := dc.Resource(gvr).Namespace("default").Create(ctx, obj, dryRun); return err }, "kplane-allowed-namespaces: namespace default: not a team namespace (CIS 5.6.4); deploy into one of adm-apps")
	})

	// The ordinary set is admitted for real.
	admitted := []struct{ kind, ns, name string }{
		{"Deployment", "adm-apps", "web"}, {"StatefulSet", "adm-apps", "db"}, {"CronJob", "adm-apps", "report"},
		{"DaemonSet", "adm-agents", "node-agent"}, {"Deployment", "adm-apps", "legacy-api"},
	}
	for _, a := range admitted {
		spec := fixtures.GoodPodSpec()
		switch a.name {
		case "node-agent": // an exempt namespace: a privileged host agent is allowed there
			fixtures.SC(spec)["privileged"] = true
			delete(fixtures.SC(spec), "allowPrivilegeEscalation")
			spec["hostPID"] = true
			spec["volumes"] = []any{map[string]any{"name": "host", "hostPath": map[string]any{"path": "/var/log"}}}
		case "legacy-api": // covered by the active exception
			delete(fixtures.SC(spec), "readOnlyRootFilesystem")
		}
		obj, gvr := workloadObject(a.kind, a.ns, a.name, spec)
		_, err := dc.Resource(gvr).Namespace(a.ns).Create(ctx, obj, k8smeta.CreateOptions{})
		assert.NoError(t, err, "%s %s/%s must be admitted", a.kind, a.ns, a.name)
	}
	// kubectl debug adds ephemeral containers to a running pod: they are checked too (with a
	// rule Pod Security Admission does not have, so that kplane's policy is the one answering).
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	target, _ := workloadObject("Pod", "adm-apps", "debug-target", fixtures.GoodPodSpec())
	_, err = dc.Resource(pods).Namespace("adm-apps").Create(ctx, target, k8smeta.CreateOptions{})
	require.NoError(t, err)
	refused(t, func() error {
		live, err := dc.Resource(pods).Namespace("adm-apps").Get(ctx, "debug-target", k8smeta.GetOptions{})
		if err != nil {
			return err
		}
		debugger := map[string]any{"name": "debugger", "image": "registry.example.com/tools" + fixtures.Digest,
			"securityContext": map[string]any{"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}}}}
		require.NoError(t, unstructured.SetNestedSlice(live.Object, []any{debugger}, "spec", "ephemeralContainers"))
		_, err = dc.Resource(pods).Namespace("adm-apps").Update(ctx, live, k8smeta.UpdateOptions{}, "ephemeralcontainers")
		return err
	}, "kplane-read-only-root: container debugger: securityContext.readOnlyRootFilesystem must be true")
	// Metadata-only updates of existing objects stay possible (controllers, garbage collection).
	deploy := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	_, err = dc.Resource(deploy).Namespace("adm-apps").Patch(ctx, "legacy-api", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"owner":"apps"}}}`), k8smeta.PatchOptions{})
	assert.NoError(t, err)

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	gone(t, dc, schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}, "", "kplane-no-privileged")
	gone(t, dc, gvrNamespace, "", "adm-apps")
	noKplaneObjects(t, dc)
}

// refused retries create until it fails with want: a new ValidatingAdmissionPolicy is enforced
// only once the API server's policy informer has it (about a second after it is created).
func refused(t *testing.T, create func() error, want string) {
	t.Helper()
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err = create(); err != nil && strings.Contains(err.Error(), want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not refused with %q; last result: %v", want, err)
}
