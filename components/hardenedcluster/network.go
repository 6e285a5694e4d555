package hardenedcluster

import (
	"fmt"

	"github.com/kplane/kplane/components/wellknown"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// newNamespaceIsolation gives a team namespace its default NetworkPolicy (CIS 5.3.2, ISMS-P
// 2.6.1): pods accept traffic only from pods of the same namespace and may reach only those and
// cluster DNS. Teams open more with NetworkPolicies of their own (policies add up). Enforcement
// needs a CNI that implements NetworkPolicy.
// apiCIDRs, when given, are added as an egress allowance to the API server on 443 and 6443.
func newNamespaceIsolation(ctx *pulumi.Context, name, ns string, apiCIDRs []string, namespace *corev1.Namespace, opts ...pulumi.ResourceOption) error {
	sameNamespace := networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{PodSelector: metav1.LabelSelectorArgs{}}}
	dnsPorts := networkingv1.NetworkPolicyPortArray{
		networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("UDP"), Port: pulumi.Int(53)},
		networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("TCP"), Port: pulumi.Int(53)},
	}
	egress := networkingv1.NetworkPolicyEgressRuleArray{
		networkingv1.NetworkPolicyEgressRuleArgs{To: sameNamespace},
		networkingv1.NetworkPolicyEgressRuleArgs{
			To: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
				NamespaceSelector: metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"kubernetes.io/metadata.name": pulumi.String("kube-system")}},
				PodSelector:       metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{"k8s-app": pulumi.String("kube-dns")}},
			}},
			Ports: dnsPorts,
		},
	}
	if len(apiCIDRs) > 0 {
		peers := networkingv1.NetworkPolicyPeerArray{}
		for _, c := range apiCIDRs {
			peers = append(peers, networkingv1.NetworkPolicyPeerArgs{IpBlock: networkingv1.IPBlockArgs{Cidr: pulumi.String(c)}})
		}
		egress = append(egress, networkingv1.NetworkPolicyEgressRuleArgs{To: peers, Ports: networkingv1.NetworkPolicyPortArray{
			networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("TCP"), Port: pulumi.Int(443)},
			networkingv1.NetworkPolicyPortArgs{Protocol: pulumi.String("TCP"), Port: pulumi.Int(6443)},
		}})
	}
	_, err := networkingv1.NewNetworkPolicy(ctx, fmt.Sprintf("%s-isolation-%s", name, ns), &networkingv1.NetworkPolicyArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String("kplane-namespace-isolation"), Namespace: pulumi.String(ns),
			Labels:      pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)},
			Annotations: pulumi.StringMap{wellknown.ControlsAnnotation: pulumi.String("CIS 5.3.2, ISMS-P 2.6.1")},
		},
		Spec: networkingv1.NetworkPolicySpecArgs{
			PodSelector: metav1.LabelSelectorArgs{},
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress", "Egress"}),
			Ingress:     networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{From: sameNamespace}},
			Egress:      egress,
		},
	}, append(opts, pulumi.DependsOn([]pulumi.Resource{namespace}))...)
	return err
}
