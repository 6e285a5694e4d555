// Package k8sobj registers Kubernetes objects rendered as maps: custom resources of upstream CRDs
// (Gatekeeper, Velero, Istio, Kong, Argo CD) and built-in kinds alike.
package k8sobj

import (
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

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

// PodSecurityVersion is the Pod Security Standards version kplane pins on the namespaces it
// makes (pod-security.kubernetes.io/enforce-version): the Kubernetes release it is tested against.
const PodSecurityVersion = "v1.37"
