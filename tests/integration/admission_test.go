package integration

import (
	"context"
	"os/exec"
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
	"k8s.io/client-go/dynamic"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/anymap"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

// workloadObject is a fixtures.Workload as an API object with its resource.
func workloadObject(kind, ns, name string, spec map[string]any) (*unstructured.Unstructured, schema.GroupVersionResource) {
	obj, group, resource := fixtures.Workload(kind, ns, name, spec)
	return &unstructured.Unstructured{Object: obj}, schema.GroupVersionResource{Group: group, Version: "v1", Resource: resource}
}

// baseline is the admission scenario both engines must pass, in namespaces <prefix>-apps (a
// team's) and <prefix>-agents (exempt, created by the stack before the component).
type baseline struct{ prefix string }

func (b baseline) apps() string   { return b.prefix + "-apps" }
func (b baseline) agents() string { return b.prefix + "-agents" }
func (b baseline) legacy() string { return b.prefix + "-legacy" } // a team at PodSecurity baseline

// args: the team, a registry, the exempt namespace, an active and an expired exception, and the
// exceptions that isolate fixtures breaking a second policy by necessity (API validation: a
// privileged container cannot set allowPrivilegeEscalation: false).
func (b baseline) args() *hardenedcluster.Args {
	exceptions := []hardenedcluster.Exception{
		{Policy: "kplane-read-only-root", Namespace: b.apps(), Workload: "legacy-*", Reason: "writes to /tmp until v2", Owner: "apps", Ticket: "SEC-101", Expires: exceptionEnd()},
		{Policy: "kplane-read-only-root", Namespace: b.apps(), Workload: "cache", Reason: "writes its spool", Owner: "apps", Ticket: "SEC-103", Expires: exceptionEnd()},
		{Policy: "kplane-read-only-root", Namespace: b.apps(), Workload: "old", Reason: "ended", Owner: "apps", Ticket: "SEC-7", Expires: "2020-01-01"},
	}
	// The CronJob check's privileged job breaks escalation too, by necessity.
	exceptions = append(exceptions, hardenedcluster.Exception{Policy: "kplane-privilege-escalation", Namespace: b.apps(), Workload: "privileged-nightly",
		Reason: "test isolation", Owner: "apps", Ticket: "SEC-102", Expires: exceptionEnd()})
	for _, v := range rules.Samples() {
		if v.Also != "" {
			exceptions = append(exceptions, hardenedcluster.Exception{Policy: v.Also, Namespace: b.apps(), Workload: v.Name, Reason: "test isolation",
				Owner: "apps", Ticket: "SEC-102", Expires: exceptionEnd()})
		}
	}
	return &hardenedcluster.Args{
		PodSecurityVersion: "v1.37",
		Teams: []hardenedcluster.Team{{Name: "apps", Namespaces: []string{b.apps()}},
			{Name: "legacy", Namespaces: []string{b.legacy()}, PodSecurity: "baseline"}},
		Admission: hardenedcluster.AdmissionArgs{
			AllowedRegistries: []string{"registry.example.com"},
			ExemptNamespaces:  []string{b.agents()},
			Exceptions:        exceptions,
			ExpiryImage:       "registry.example.com/kplane-admission" + rules.Digest,
		},
	}
}

// exceptionEnd is the last day of the tests' exceptions: 30 days ahead (within the cap).
func exceptionEnd() string { return time.Now().UTC().AddDate(0, 0, 30).Format("2006-01-02") }

// setup creates the exempt agents namespace before the component.
func (b baseline) setup(ctx *pulumi.Context, k8s pulumi.ProviderResource) ([]pulumi.Resource, error) {
	ns, err := corev1.NewNamespace(ctx, "agents", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(b.agents())}}, pulumi.Provider(k8s))
	return []pulumi.Resource{ns}, err
}

// check: bad workloads are refused at apply time with the policy, the field and the fix; the
// ordinary set (web Deployment, StatefulSet database, CronJob, DaemonSet agent in the exempt
// namespace) is admitted; the active exception admits its one workload, the expired one does
// not; metadata-only updates of existing objects get through.
func (b baseline) check(t *testing.T, dc dynamic.Interface) {
	ctx := context.Background()
	apps := b.apps()
	dryRun := k8smeta.CreateOptions{DryRun: []string{"All"}}
	create := func(obj *unstructured.Unstructured, gvr schema.GroupVersionResource, ns string) func() error {
		return func() error { _, err := dc.Resource(gvr).Namespace(ns).Create(ctx, obj, dryRun); return err }
	}
	for _, v := range rules.Samples() {
		if v.Namespace != "" {
			continue // where a workload runs: the namespace cases below
		}
		t.Run("denied/"+v.Name, func(t *testing.T) {
			spec := rules.GoodPodSpec()
			v.Mutate(spec)
			obj, gvr := workloadObject("Deployment", apps, v.Name, spec)
			fixtures.Annotate(obj.Object, v.Annotations)
			refused(t, create(obj, gvr, apps), v.Policy+": "+v.Want)
		})
	}
	t.Run("denied/expired exception", func(t *testing.T) {
		spec := rules.GoodPodSpec()
		delete(rules.SC(spec), "readOnlyRootFilesystem")
		obj, gvr := workloadObject("Deployment", apps, "old-app", spec)
		refused(t, create(obj, gvr, apps), "kplane-read-only-root: container app: securityContext.readOnlyRootFilesystem must be true")
	})
	t.Run("denied/another workload sharing the excepted name's prefix", func(t *testing.T) {
		spec := rules.GoodPodSpec()
		delete(rules.SC(spec), "readOnlyRootFilesystem")
		obj, gvr := workloadObject("Deployment", apps, "cacheadmin", spec)
		refused(t, create(obj, gvr, apps), "kplane-read-only-root: container app: securityContext.readOnlyRootFilesystem must be true")
	})
	t.Run("denied/cronjob", func(t *testing.T) {
		spec := rules.GoodPodSpec()
		rules.SC(spec)["privileged"] = true
		delete(rules.SC(spec), "allowPrivilegeEscalation")
		obj, gvr := workloadObject("CronJob", apps, "privileged-nightly", spec)
		refused(t, create(obj, gvr, apps), "kplane-no-privileged: container app")
	})
	t.Run("baseline team", func(t *testing.T) {
		// Held to baseline, not to restricted's extra rules: admitted without them ...
		spec := rules.GoodPodSpec()
		spec["securityContext"] = map[string]any{}
		rules.SC(spec)["capabilities"] = map[string]any{"add": []any{"CHOWN"}}
		delete(rules.SC(spec), "allowPrivilegeEscalation")
		obj, gvr := workloadObject("Deployment", b.legacy(), "old-style", spec)
		require.Eventually(t, func() bool { return create(obj, gvr, b.legacy())() == nil }, 30*time.Second, 200*time.Millisecond,
			"a baseline team's workload without restricted's settings is admitted")
		// ... while baseline's own rules still refuse.
		rules.SC(spec)["privileged"] = true
		privileged, gvr := workloadObject("Deployment", b.legacy(), "old-privileged", spec)
		refused(t, create(privileged, gvr, b.legacy()), "kplane-no-privileged: container app")
	})
	t.Run("denied/outside team namespaces", func(t *testing.T) {
		obj, gvr := workloadObject("Deployment", "default", "stray", rules.GoodPodSpec())
		refused(t, create(obj, gvr, "default"), "kplane-allowed-namespaces: namespace default: not a team namespace (CIS 5.6.4); deploy into one of "+apps)
	})

	// The ordinary set is admitted for real.
	admitted := []struct{ kind, ns, name string }{
		{"Deployment", apps, "web"}, {"StatefulSet", apps, "db"}, {"CronJob", apps, "report"},
		{"DaemonSet", b.agents(), "node-agent"}, {"Deployment", apps, "legacy-api"}, {"Deployment", apps, "cache"},
	}
	for _, a := range admitted {
		spec := rules.GoodPodSpec()
		switch a.name {
		case "node-agent": // an exempt namespace: a privileged host agent is allowed there
			rules.SC(spec)["privileged"] = true
			delete(rules.SC(spec), "allowPrivilegeEscalation")
			spec["hostPID"] = true
			spec["volumes"] = []any{map[string]any{"name": "host", "hostPath": map[string]any{"path": "/var/log"}}}
		case "legacy-api", "cache": // covered by the active exceptions (legacy-*, cache by its whole name)
			delete(rules.SC(spec), "readOnlyRootFilesystem")
		}
		obj, gvr := workloadObject(a.kind, a.ns, a.name, spec)
		_, err := dc.Resource(gvr).Namespace(a.ns).Create(ctx, obj, k8smeta.CreateOptions{})
		assert.NoError(t, err, "%s %s/%s must be admitted", a.kind, a.ns, a.name)
	}
	// Metadata-only updates of existing objects stay possible (controllers, garbage collection).
	_, err := dc.Resource(gvrDeployment).Namespace(apps).Patch(ctx, "legacy-api", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"owner":"apps"}}}`), k8smeta.PatchOptions{})
	assert.NoError(t, err)
}

// TestAdmissionBaseline: the hardened-cluster policies run in the real API server's admission
// path as ValidatingAdmissionPolicies (the default engine), including kubectl debug's
// ephemeral containers; exceptions stay listed on the policies.
func TestAdmissionBaseline(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	ctx := context.Background()
	b := baseline{prefix: "adm"}
	s := hardenedStack(t, c, "admission", b.args(), b.setup)
	up, err := s.Up(ctx)
	require.NoError(t, err)
	dc, err := c.Dynamic()
	require.NoError(t, err)

	vap := get(t, dc, schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}, "", "kplane-read-only-root")
	assert.Contains(t, vap.GetAnnotations()[wellknown.ExceptionsAnnotation], `"reason":"writes to /tmp until v2"`, "active exceptions stay listed on the policy")
	assert.NotContains(t, vap.GetAnnotations()[wellknown.ExceptionsAnnotation], `"workload":"old"`, "expired exceptions are not applied")
	assert.Contains(t, up.StdOut+up.StdErr, "expired on 2020-01-01 and no longer applies")

	b.check(t, dc)
	expireExceptions(t, c, dc, b.apps(), "kplane-read-only-root")

	debugRefused(t, dc, b.apps())

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	gone(t, dc, schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}, "", "kplane-no-privileged")
	gone(t, dc, gvrNamespace, "", b.apps())
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

// expireExceptions runs the exception-expiry CronJob's own command as its ServiceAccount on the
// day after the exceptions' last day: from then on the workload the exception covered is
// refused, without a pulumi up.
func expireExceptions(t *testing.T, c *testbed.Cluster, dc dynamic.Interface, apps, policy string) {
	t.Helper()
	ctx := context.Background()
	cron := get(t, dc, schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, hardenedcluster.ExceptionExpiryNamespace, "kplane-exception-expiry")
	containers, _, _ := unstructured.NestedSlice(cron.Object, "spec", "jobTemplate", "spec", "template", "spec", "containers")
	require.Len(t, containers, 1)
	args := anymap.Strings(containers[0].(map[string]any)["args"])
	end, err := time.Parse("2006-01-02", exceptionEnd())
	require.NoError(t, err)
	spec := rules.GoodPodSpec()
	delete(rules.SC(spec), "readOnlyRootFilesystem")
	obj, gvr := workloadObject("Deployment", apps, "legacy-worker", spec)
	dryRun := k8smeta.CreateOptions{DryRun: []string{"All"}}
	_, err = dc.Resource(gvr).Namespace(apps).Create(ctx, obj, dryRun)
	require.NoError(t, err, "the exception covers legacy-worker until its last day")
	run := func(day time.Time) string {
		cmd := exec.CommandContext(ctx, buildCommand(t, "github.com/kplane/kplane/cmd/kplane-admission"),
			append(args, "--kubeconfig="+serviceAccountKubeconfig(t, c, hardenedcluster.ExceptionExpiryNamespace, "kplane-exception-expiry"), "--today="+day.Format("2006-01-02"))...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	assert.Contains(t, run(end), "0 exceptions expired", "on its last day the exception still applies")
	out := run(end.AddDate(0, 0, 1))
	t.Logf("the day after:\n%s", out)
	assert.Contains(t, out, "removed "+policy+": exception expired on "+end.Format("2006-01-02"))
	refused(t, func() error { _, err := dc.Resource(gvr).Namespace(apps).Create(ctx, obj, dryRun); return err },
		policy+": container app: securityContext.readOnlyRootFilesystem must be true")
}

// debugRefused: kubectl debug adds ephemeral containers to a running pod through the
// pods/ephemeralcontainers subresource; they are checked too (with a rule Pod Security Admission
// does not have, so that kplane's policy is the one answering).
func debugRefused(t *testing.T, dc dynamic.Interface, apps string) {
	t.Helper()
	ctx := context.Background()
	target, _ := workloadObject("Pod", apps, "debug-target", rules.GoodPodSpec())
	_, err := dc.Resource(gvrPod).Namespace(apps).Create(ctx, target, k8smeta.CreateOptions{})
	require.NoError(t, err)
	refused(t, func() error {
		live, err := dc.Resource(gvrPod).Namespace(apps).Get(ctx, "debug-target", k8smeta.GetOptions{})
		if err != nil {
			return err
		}
		debugger := map[string]any{"name": "debugger", "image": "registry.example.com/tools" + rules.Digest,
			"securityContext": map[string]any{"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}}}}
		require.NoError(t, unstructured.SetNestedSlice(live.Object, []any{debugger}, "spec", "ephemeralContainers"))
		_, err = dc.Resource(gvrPod).Namespace(apps).Update(ctx, live, k8smeta.UpdateOptions{}, "ephemeralcontainers")
		return err
	}, "kplane-read-only-root: container debugger: securityContext.readOnlyRootFilesystem must be true")
}
