package hardenedcluster

import (
	"fmt"

	"github.com/kplane/kplane/components/wellknown"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// newServiceRBAC creates, per service, a ServiceAccount and a Role/RoleBinding (and a
// ClusterRole/ClusterRoleBinding only when it declares ClusterRules), separated per service.
// It returns the ServiceAccounts' names and resources by "<namespace>/<service>".
func newServiceRBAC(ctx *pulumi.Context, name string, services []Service, ns map[string]*corev1.Namespace, parent pulumi.ResourceOption) (pulumi.StringMap, map[string]pulumi.Resource, error) {
	accounts := pulumi.StringMap{}
	resources := map[string]pulumi.Resource{}
	for _, s := range services {
		id := fmt.Sprintf("%s-%s-%s", name, s.Namespace, s.Name)
		dep := pulumi.DependsOn([]pulumi.Resource{ns[s.Namespace]})
		labels := pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), wellknown.ServiceLabel: pulumi.String(s.Name)}
		sa, err := corev1.NewServiceAccount(ctx, id, &corev1.ServiceAccountArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(s.Name), Namespace: pulumi.String(s.Namespace), Labels: labels,
			},
			AutomountServiceAccountToken: pulumi.Bool(s.AutomountToken),
		}, parent, dep)
		if err != nil {
			return nil, nil, err
		}
		accounts[s.Namespace+"/"+s.Name] = sa.Metadata.Name().Elem()
		resources[s.Namespace+"/"+s.Name] = sa
		subject := rbacv1.SubjectArray{rbacv1.SubjectArgs{
			Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(s.Name), Namespace: pulumi.String(s.Namespace),
		}}
		roleName := "kplane-svc-" + s.Name
		roleMeta := func(name string, namespace pulumi.StringPtrInput) *metav1.ObjectMetaArgs {
			m := &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: namespace, Labels: labels}
			if s.WildcardReason != "" {
				m.Annotations = pulumi.StringMap{wellknown.WildcardReasonAnnotation: pulumi.String(s.WildcardReason)}
			}
			return m
		}
		if len(s.Rules) > 0 {
			role, err := rbacv1.NewRole(ctx, id, &rbacv1.RoleArgs{
				Metadata: roleMeta(roleName, pulumi.String(s.Namespace)),
				Rules:    policyRules(s.Rules),
			}, parent, dep)
			if err != nil {
				return nil, nil, err
			}
			if _, err := rbacv1.NewRoleBinding(ctx, id, &rbacv1.RoleBindingArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(roleName), Namespace: pulumi.String(s.Namespace), Labels: labels},
				RoleRef: rbacv1.RoleRefArgs{
					ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: role.Metadata.Name().Elem(),
				},
				Subjects: subject,
			}, parent, dep); err != nil {
				return nil, nil, err
			}
		}
		if len(s.ClusterRules) > 0 {
			clusterName := fmt.Sprintf("kplane-svc-%s-%s", s.Namespace, s.Name)
			role, err := rbacv1.NewClusterRole(ctx, id, &rbacv1.ClusterRoleArgs{
				Metadata: roleMeta(clusterName, nil),
				Rules:    policyRules(s.ClusterRules),
			}, parent)
			if err != nil {
				return nil, nil, err
			}
			if _, err := rbacv1.NewClusterRoleBinding(ctx, id, &rbacv1.ClusterRoleBindingArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(clusterName), Labels: labels},
				RoleRef: rbacv1.RoleRefArgs{
					ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: role.Metadata.Name().Elem(),
				},
				Subjects: subject,
			}, parent, dep); err != nil {
				return nil, nil, err
			}
		}
	}
	return accounts, resources, nil
}

func policyRules(rules []Rule) rbacv1.PolicyRuleArray {
	out := rbacv1.PolicyRuleArray{}
	for _, r := range rules {
		groups := r.APIGroups
		if len(groups) == 0 {
			groups = []string{""}
		}
		rule := rbacv1.PolicyRuleArgs{
			ApiGroups: pulumi.ToStringArray(groups),
			Resources: pulumi.ToStringArray(r.Resources),
			Verbs:     pulumi.ToStringArray(r.Verbs),
		}
		if len(r.ResourceNames) > 0 {
			rule.ResourceNames = pulumi.ToStringArray(r.ResourceNames)
		}
		out = append(out, rule)
	}
	return out
}
