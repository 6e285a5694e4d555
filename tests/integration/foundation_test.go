package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	apiextv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions/v1"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
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
	"github.com/kplane/kplane/tests/testbed"
)

// workload is a stack with everything the foundation must carry: the hardened-cluster
// component (namespace with Pod Security labels, ServiceAccount, Role, RoleBinding), a CRD and
// a custom resource of it, and a Deployment that must become Ready on KWOK nodes.
func workload(prefix, kubeconfig string) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(kubeconfig)})
		if err != nil {
			return err
		}
		ns := prefix + "-apps"
		hc, err := hardenedcluster.NewHardenedCluster(ctx, prefix, &hardenedcluster.Args{
			PodSecurityVersion: "v1.37",
			Teams:              []hardenedcluster.Team{{Name: "apps", Namespaces: []string{ns}}},
			Services: []hardenedcluster.Service{{Name: "web", Namespace: ns,
				Rules: []hardenedcluster.Rule{{Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}}},
		}, pulumi.Providers(k8s))
		if err != nil {
			return err
		}
		group := prefix + ".kplane.io"
		crd, err := apiextv1.NewCustomResourceDefinition(ctx, "widgets", &apiextv1.CustomResourceDefinitionArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("widgets." + group)},
			Spec: apiextv1.CustomResourceDefinitionSpecArgs{
				Group: pulumi.String(group),
				Names: apiextv1.CustomResourceDefinitionNamesArgs{Kind: pulumi.String("Widget"), Plural: pulumi.String("widgets"), Singular: pulumi.String("widget")},
				Scope: pulumi.String("Namespaced"),
				Versions: apiextv1.CustomResourceDefinitionVersionArray{apiextv1.CustomResourceDefinitionVersionArgs{
					Name: pulumi.String("v1"), Served: pulumi.Bool(true), Storage: pulumi.Bool(true),
					Schema: apiextv1.CustomResourceValidationArgs{OpenAPIV3Schema: apiextv1.JSONSchemaPropsArgs{
						Type: pulumi.String("object"),
						Properties: apiextv1.JSONSchemaPropsMap{"spec": apiextv1.JSONSchemaPropsArgs{
							Type:       pulumi.String("object"),
							Properties: apiextv1.JSONSchemaPropsMap{"size": apiextv1.JSONSchemaPropsArgs{Type: pulumi.String("integer")}},
						}},
					}},
				}},
			},
		}, pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		nsName := hc.Namespaces.MapIndex(pulumi.String(ns))
		if _, err := apiextensions.NewCustomResource(ctx, "widget", &apiextensions.CustomResourceArgs{
			ApiVersion:  pulumi.String(group + "/v1"),
			Kind:        pulumi.String("Widget"),
			Metadata:    &metav1.ObjectMetaArgs{Name: pulumi.String("w1"), Namespace: nsName},
			OtherFields: kubernetes.UntypedArgs{"spec": map[string]any{"size": 3}},
		}, pulumi.Provider(k8s), pulumi.DependsOn([]pulumi.Resource{crd})); err != nil {
			return err
		}
		labels := pulumi.StringMap{"app": pulumi.String("web")}
		_, err = appsv1.NewDeployment(ctx, "web", &appsv1.DeploymentArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("web"), Namespace: nsName},
			Spec: appsv1.DeploymentSpecArgs{
				Replicas: pulumi.Int(2),
				Selector: &metav1.LabelSelectorArgs{MatchLabels: labels},
				Template: corev1.PodTemplateSpecArgs{
					Metadata: &metav1.ObjectMetaArgs{Labels: labels},
					Spec: corev1.PodSpecArgs{
						ServiceAccountName:           pulumi.String("web"),
						AutomountServiceAccountToken: pulumi.Bool(false),
						SecurityContext: corev1.PodSecurityContextArgs{
							RunAsNonRoot: pulumi.Bool(true), RunAsUser: pulumi.Int(10001),
							SeccompProfile: corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
						},
						Containers: corev1.ContainerArray{corev1.ContainerArgs{
							Name:  pulumi.String("web"),
							Image: pulumi.String("registry.example.com/web@sha256:" + strings.Repeat("a", 64)),
							SecurityContext: corev1.SecurityContextArgs{
								AllowPrivilegeEscalation: pulumi.Bool(false),
								ReadOnlyRootFilesystem:   pulumi.Bool(true),
								Capabilities:             corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
							},
						}},
					},
				},
			},
		}, pulumi.Provider(k8s), pulumi.DependsOn([]pulumi.Resource{hc}))
		return err
	}
}

// TestFoundation: three real clusters at once; in each a real `pulumi up` creates namespaces,
// RBAC, a CRD, a custom resource and a Deployment that becomes Ready on KWOK nodes; a control
// plane restart keeps everything (and preview then sees no drift); `pulumi destroy` removes it.
func TestFoundation(t *testing.T) {
	integration(t)
	clusters := testbed.StartN(t, 3, testbed.Options{Nodes: 2})
	state := t.TempDir()
	var wg sync.WaitGroup
	for i, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(c.Name, func(t *testing.T) { exerciseCluster(t, c, fmt.Sprintf("it%d", i), i == 0, state) })
		}()
	}
	wg.Wait()
}

func exerciseCluster(t *testing.T, c *testbed.Cluster, prefix string, restart bool, state string) {
	ctx := context.Background()
	s := openStack(t, c.Name, workload(prefix, c.Kubeconfig), nil, state)
	up, err := s.Up(ctx)
	require.NoError(t, err)
	// stack, provider, component, Namespace, ServiceAccount, Role, RoleBinding, CRD, Widget,
	// Deployment, the default ServiceAccount's patch, the namespace's NetworkPolicy, and every
	// admission policy but allowed registries (none given), each with its binding
	policies := len(hardenedcluster.PolicyNames()) - 1
	assert.Equal(t, 10+1+1+policies*2, (*up.Summary.ResourceChanges)["create"], "resources created")

	dc, err := c.Dynamic()
	require.NoError(t, err)
	ns := prefix + "-apps"
	nsObj := get(t, dc, gvrNamespace, "", ns)
	assert.Equal(t, "restricted", nsObj.GetLabels()["pod-security.kubernetes.io/enforce"])
	assert.Equal(t, "v1.37", nsObj.GetLabels()["pod-security.kubernetes.io/enforce-version"])
	get(t, dc, gvrSA, ns, "web")
	role := get(t, dc, gvrRole, ns, "kplane-svc-web")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	require.Len(t, rules, 1)
	get(t, dc, gvrRoleBind, ns, "kplane-svc-web")
	crd := get(t, dc, gvrCRD, "", "widgets."+prefix+".kplane.io")
	assert.True(t, established(crd), "CRD must be Established")
	widget := get(t, dc, widgetGVR(prefix), ns, "w1")
	assert.Equal(t, int64(3), num(widget, "spec", "size"))
	dep := get(t, dc, gvrDeployment, ns, "web")
	assert.Equal(t, int64(2), num(dep, "status", "readyReplicas"), "pods must become Ready on KWOK nodes")
	pods, err := dc.Resource(gvrPod).Namespace(ns).List(ctx, k8smeta.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	require.Len(t, pods.Items, 2)
	for _, p := range pods.Items {
		assert.True(t, strings.HasPrefix(str(&p, "spec", "nodeName"), "kwok-node-"), "pod %s scheduled on a KWOK node", p.GetName())
		assert.Equal(t, "Running", str(&p, "status", "phase"))
	}

	if restart {
		require.NoError(t, c.Stop())
		require.NoError(t, c.Start(ctx))
		t.Logf("restart: ready again in %.1fs", c.ReadyIn.Seconds())
		dc, err = c.Dynamic()
		require.NoError(t, err)
		assert.Equal(t, int64(3), num(get(t, dc, widgetGVR(prefix), ns, "w1"), "spec", "size"), "data survives a restart")
		get(t, dc, gvrRole, ns, "kplane-svc-web")
		waitReady(t, dc, ns, "web", 2)
		pre, err := s.Preview(ctx)
		require.NoError(t, err)
		assert.Equal(t, 0, pre.ChangeSummary["create"]+pre.ChangeSummary["update"]+pre.ChangeSummary["delete"]+pre.ChangeSummary["replace"],
			"after a restart the stack has no drift: %v", pre.ChangeSummary)
	}

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	gone(t, dc, gvrCRD, "", "widgets."+prefix+".kplane.io")
	gone(t, dc, gvrRole, ns, "kplane-svc-web")
	gone(t, dc, gvrDeployment, ns, "web")
	gone(t, dc, gvrNamespace, "", ns)
}

func waitReady(t *testing.T, d dynamic.Interface, ns, name string, want int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if num(get(t, d, gvrDeployment, ns, name), "status", "readyReplicas") == want {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("deployment %s/%s not ready again after restart", ns, name)
}

func widgetGVR(prefix string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: prefix + ".kplane.io", Version: "v1", Resource: "widgets"}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
