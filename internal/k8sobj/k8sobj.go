// Package k8sobj registers Kubernetes objects rendered as maps (custom resources of upstream
// CRDs: Gatekeeper templates and constraints, Velero locations and schedules).
package k8sobj

import (
	"strings"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// CustomResource registers obj: apiVersion, kind, metadata (name, namespace, labels,
// annotations) and the rest as is.
func CustomResource(ctx *pulumi.Context, name string, obj map[string]any, opts ...pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	meta := obj["metadata"].(map[string]any)
	strs := func(key string) pulumi.StringMap {
		m := pulumi.StringMap{}
		given, _ := meta[key].(map[string]any)
		for k, v := range given {
			m[k] = pulumi.String(v.(string))
		}
		return m
	}
	other := kubernetes.UntypedArgs{}
	for k, v := range obj {
		if k != "apiVersion" && k != "kind" && k != "metadata" {
			other[k] = v
		}
	}
	m := &metav1.ObjectMetaArgs{Name: pulumi.String(meta["name"].(string)), Labels: strs("labels"), Annotations: strs("annotations")}
	if ns, _ := meta["namespace"].(string); ns != "" {
		m.Namespace = pulumi.String(ns)
	}
	return apiextensions.NewCustomResource(ctx, name, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String(obj["apiVersion"].(string)),
		Kind:        pulumi.String(obj["kind"].(string)),
		Metadata:    m,
		OtherFields: other,
	}, opts...)
}

// objectResource is any Kubernetes object registered by Object.
type objectResource struct{ pulumi.CustomResourceState }

// Object registers obj, of any kind — built-in (apiVersion v1 is Pulumi's core/v1) or custom —
// under its Pulumi type, so the provider treats it as that kind (await logic, secrets).
func Object(ctx *pulumi.Context, name string, obj map[string]any, opts ...pulumi.ResourceOption) (pulumi.CustomResource, error) {
	group := obj["apiVersion"].(string)
	if !strings.Contains(group, "/") {
		group = "core/" + group
	}
	res := &objectResource{}
	err := ctx.RegisterResource("kubernetes:"+group+":"+obj["kind"].(string), name, pulumi.ToMap(obj), res, opts...)
	return res, err
}
