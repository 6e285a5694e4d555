package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/tests/testbed"
)

var digest = "@sha256:" + strings.Repeat("b", 64)

// goodSpec is an ordinary pod spec that meets the whole baseline.
func goodSpec() map[string]any {
	return map[string]any{
		"automountServiceAccountToken": false,
		"securityContext":              map[string]any{"runAsNonRoot": true, "runAsUser": int64(10001), "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
		"containers": []any{map[string]any{
			"name": "app", "image": "registry.example.com/app" + digest,
			"securityContext": map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": map[string]any{"drop": []any{"ALL"}}},
		}},
	}
}

func container(spec map[string]any) map[string]any {
	return spec["containers"].([]any)[0].(map[string]any)
}

func csc(spec map[string]any) map[string]any {
	return container(spec)["securityContext"].(map[string]any)
}

// workloadObject wraps a pod spec in a controller of the given kind.
func workloadObject(kind, ns, name string, spec map[string]any) (*unstructured.Unstructured, schema.GroupVersionResource) {
	labels := map[string]any{"app": name}
	template := map[string]any{"metadata": map[string]any{"labels": labels}, "spec": spec}
	obj := map[string]any{"metadata": map[string]any{"name": name, "namespace": ns}}
	var gvr schema.GroupVersionResource
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet":
		obj["apiVersion"], obj["kind"] = "apps/v1", kind
		obj["spec"] = map[string]any{"selector": map[string]any{"matchLabels": labels}, "template": template}
		if kind == "StatefulSet" {
			obj["spec"].(map[string]any)["serviceName"] = name
		}
		gvr = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: strings.ToLower(kind) + "s"}
	case "CronJob":
		spec["restartPolicy"] = "OnFailure"
		obj["apiVersion"], obj["kind"] = "batch/v1", kind
		obj["spec"] = map[string]any{"schedule": "*/5 * * * *", "jobTemplate": map[string]any{"spec": map[string]any{"template": template}}}
		gvr = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}
	}
	return &unstructured.Unstructured{Object: obj}, gvr
}

// TestAdmissionBaseline: the hardened-cluster policies run in the real API server's admission
// path; bad workloads are refused at apply time with the policy, the field and the fix; the
// ordinary set (web Deployment, StatefulSet database, CronJob, DaemonSet agent in an exempt
// namespace) is admitted; an exception admits its one workload; an expired one does not.
func TestAdmissionBaseline(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	ctx := context.Background()
	program := func(pctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(pctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		agents, err := corev1.NewNamespace(pctx, "agents", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("adm-agents")}}, pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		_, err = hardenedcluster.NewHardenedCluster(pctx, "adm", &hardenedcluster.Args{
			PodSecurityVersion: "v1.37",
			Teams:              []hardenedcluster.Team{{Name: "apps", Namespaces: []string{"adm-apps"}}},
			Admission: hardenedcluster.AdmissionArgs{
				AllowedRegistries: []string{"registry.example.com/"},
				ExemptNamespaces:  []string{"adm-agents"},
				Exceptions: []hardenedcluster.Exception{
					{Policy: "kplane-read-only-root", Namespace: "adm-apps", Workload: "legacy", Reason: "writes to /tmp until v2", Expires: "2099-12-31"},
					{Policy: "kplane-read-only-root", Namespace: "adm-apps", Workload: "old", Reason: "ended", Expires: "2020-01-01"},
					// A privileged container cannot set allowPrivilegeEscalation: false (API validation),
					// so "priv*" fixtures are excepted from that policy to isolate kplane-no-privileged.
					{Policy: "kplane-privilege-escalation", Namespace: "adm-apps", Workload: "priv", Reason: "test isolation", Expires: "2099-12-31"},
				},
			},
		}, pulumi.Providers(k8s), pulumi.DependsOn([]pulumi.Resource{agents}))
		return err
	}
	s := openStack(t, "admission", program, nil, t.TempDir())
	up, err := s.Up(ctx)
	require.NoError(t, err)
	dc, err := c.Dynamic()
	require.NoError(t, err)

	vap := get(t, dc, schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}, "", "kplane-read-only-root")
	assert.Contains(t, vap.GetAnnotations()["kplane.io/exceptions"], `"reason":"writes to /tmp until v2"`, "active exceptions stay listed on the policy")
	assert.NotContains(t, vap.GetAnnotations()["kplane.io/exceptions"], `"workload":"old"`, "expired exceptions are not applied")
	assert.Contains(t, up.StdOut+up.StdErr, "expired on 2020-01-01 and no longer applies")

	dryRun := k8smeta.CreateOptions{DryRun: []string{"All"}}
	denied := map[string]struct {
		mutate func(map[string]any)
		want   string
	}{
		"privileged":          {func(s map[string]any) { csc(s)["privileged"] = true; delete(csc(s), "allowPrivilegeEscalation") }, "kplane-no-privileged: container app: securityContext.privileged must be false (CIS 5.2.2)"},
		"root user":           {func(s map[string]any) { csc(s)["runAsUser"] = int64(0) }, "kplane-run-as-non-root: container app: securityContext.runAsUser must not be 0 (root)"},
		"runAsNonRoot unset":  {func(s map[string]any) { delete(s["securityContext"].(map[string]any), "runAsNonRoot") }, "kplane-run-as-non-root: container app: securityContext.runAsNonRoot must be true"},
		"container overrides": {func(s map[string]any) { csc(s)["runAsNonRoot"] = false }, "securityContext.runAsNonRoot must be true, on the container or the pod"},
		"escalation unset":    {func(s map[string]any) { delete(csc(s), "allowPrivilegeEscalation") }, "kplane-privilege-escalation: container app: securityContext.allowPrivilegeEscalation must be set to false"},
		"writable root":       {func(s map[string]any) { delete(csc(s), "readOnlyRootFilesystem") }, "kplane-read-only-root: container app: securityContext.readOnlyRootFilesystem must be true"},
		"added capability":    {func(s map[string]any) { csc(s)["capabilities"].(map[string]any)["add"] = []any{"SYS_ADMIN"} }, "capabilities.add may only contain NET_BIND_SERVICE"},
		"no drop ALL":         {func(s map[string]any) { delete(csc(s), "capabilities") }, "capabilities.drop must include ALL"},
		"seccomp unconfined":  {func(s map[string]any) { csc(s)["seccompProfile"] = map[string]any{"type": "Unconfined"} }, "kplane-seccomp: container app: securityContext.seccompProfile.type must be RuntimeDefault or Localhost"},
		"host network":        {func(s map[string]any) { s["hostNetwork"] = true }, "kplane-host-namespaces: spec.hostNetwork must be unset or false (CIS 5.2.5)"},
		"host PID":            {func(s map[string]any) { s["hostPID"] = true }, "spec.hostPID must be unset or false"},
		"host path": {func(s map[string]any) {
			s["volumes"] = []any{map[string]any{"name": "h", "hostPath": map[string]any{"path": "/etc"}}}
		}, "kplane-host-path: spec.volumes: hostPath volumes are not allowed"},
		"host port": {func(s map[string]any) {
			container(s)["ports"] = []any{map[string]any{"containerPort": int64(80), "hostPort": int64(80)}}
		}, "kplane-host-ports: container app: ports[].hostPort must be unset or 0"},
		"image tag":        {func(s map[string]any) { container(s)["image"] = "registry.example.com/app:1.0" }, "kplane-image-digest: container app: image must be pinned by digest"},
		"foreign registry": {func(s map[string]any) { container(s)["image"] = "docker.io/library/nginx" + digest }, "kplane-allowed-registries: container app: image is not from an allowed registry"},
		"bad init container": {func(s map[string]any) {
			s["initContainers"] = []any{map[string]any{"name": "init", "image": "registry.example.com/i" + digest, "securityContext": map[string]any{"privileged": true, "readOnlyRootFilesystem": true, "capabilities": map[string]any{"drop": []any{"ALL"}}}}}
		}, "kplane-no-privileged: container init: securityContext.privileged must be false"},
		"expired exception": {nil, "kplane-read-only-root: container app: securityContext.readOnlyRootFilesystem must be true"},
	}
	for name, tc := range denied {
		t.Run("denied/"+name, func(t *testing.T) {
			spec, wl := goodSpec(), "bad"
			if strings.Contains(name, "privileged") || strings.Contains(name, "init") {
				wl = "priv-bad"
			}
			if tc.mutate != nil {
				tc.mutate(spec)
			} else { // the expired exception's workload, without a read-only root
				wl = "old-app"
				delete(csc(spec), "readOnlyRootFilesystem")
			}
			obj, gvr := workloadObject("Deployment", "adm-apps", wl, spec)
			refused(t, func() error { _, err := dc.Resource(gvr).Namespace("adm-apps").Create(ctx, obj, dryRun); return err }, tc.want)
		})
	}
	t.Run("denied/cronjob", func(t *testing.T) {
		spec := goodSpec()
		csc(spec)["privileged"] = true
		delete(csc(spec), "allowPrivilegeEscalation")
		obj, gvr := workloadObject("CronJob", "adm-apps", "priv-nightly", spec)
		refused(t, func() error { _, err := dc.Resource(gvr).Namespace("adm-apps").Create(ctx, obj, dryRun); return err }, "kplane-no-privileged: container app")
	})
	t.Run("denied/outside team namespaces", func(t *testing.T) {
		obj, gvr := workloadObject("Deployment", "default", "stray", goodSpec())
		refused(t, func() error { _, err := dc.Resource(gvr).Namespace("default").Create(ctx, obj, dryRun); return err }, "kplane-allowed-namespaces: namespace default: not a team namespace (CIS 5.6.4); deploy into one of adm-apps")
	})

	// The ordinary set is admitted for real.
	admitted := []struct{ kind, ns, name string }{
		{"Deployment", "adm-apps", "web"}, {"StatefulSet", "adm-apps", "db"}, {"CronJob", "adm-apps", "report"},
		{"DaemonSet", "adm-agents", "node-agent"}, {"Deployment", "adm-apps", "legacy-api"},
	}
	for _, a := range admitted {
		spec := goodSpec()
		switch a.name {
		case "node-agent": // an exempt namespace: a privileged host agent is allowed there
			csc(spec)["privileged"] = true
			delete(csc(spec), "allowPrivilegeEscalation")
			spec["hostPID"] = true
			spec["volumes"] = []any{map[string]any{"name": "host", "hostPath": map[string]any{"path": "/var/log"}}}
		case "legacy-api": // covered by the active exception
			delete(csc(spec), "readOnlyRootFilesystem")
		}
		obj, gvr := workloadObject(a.kind, a.ns, a.name, spec)
		_, err := dc.Resource(gvr).Namespace(a.ns).Create(ctx, obj, k8smeta.CreateOptions{})
		assert.NoError(t, err, "%s %s/%s must be admitted", a.kind, a.ns, a.name)
	}
	// Metadata-only updates of existing objects stay possible (controllers, garbage collection).
	deploy := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	_, err = dc.Resource(deploy).Namespace("adm-apps").Patch(ctx, "legacy-api", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"owner":"apps"}}}`), k8smeta.PatchOptions{})
	assert.NoError(t, err)

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	gone(t, dc, schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}, "", "kplane-no-privileged")
	gone(t, dc, gvrNamespace, "", "adm-apps")
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
