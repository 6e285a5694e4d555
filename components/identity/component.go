package identity

import (
	"encoding/json"
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Namespace holds the realm's representation (and, later, its sync Job).
const Namespace = "kplane-identity"

// RealmLabel marks a ConfigMap whose realm.json is a Keycloak realm representation (kplane's
// identity policies judge it, the realm sync applies it).
const RealmLabel = "kplane.io/keycloak-realm"

// Realm is the identity realm deployed into one cluster: the realm's representation (what the
// realm sync applies to Keycloak) and the RBAC that gives each group its rights there.
type Realm struct {
	pulumi.ResourceState

	// Issuer is the realm's OIDC issuer URL.
	Issuer pulumi.StringOutput `pulumi:"issuer"`
	// AuthenticationConfig is the kube-apiserver AuthenticationConfiguration trusting the realm.
	AuthenticationConfig pulumi.StringOutput `pulumi:"authenticationConfig"`
	// RealmJSON is the realm representation (no secrets: the LDAP bind password is a placeholder).
	RealmJSON pulumi.StringOutput `pulumi:"realmJson"`
}

// NewRealm validates args, then registers the realm's objects in the cluster of the given provider.
func NewRealm(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Realm, error) {
	if args == nil {
		args = &Args{}
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("identity %q: %w", name, err)
	}
	a := args.withDefaults()
	authn, err := AuthenticationConfiguration(a)
	if err != nil {
		return nil, err
	}
	realmJSON, err := json.Marshal(Representation(a))
	if err != nil {
		return nil, err
	}
	r := &Realm{}
	if err := ctx.RegisterComponentResource("kplane:index:IdentityRealm", name, r, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(r)
	labels := pulumi.StringMap{"app.kubernetes.io/managed-by": pulumi.String("kplane"), "app.kubernetes.io/part-of": pulumi.String("kplane-identity")}
	ns, err := corev1.NewNamespace(ctx, name+"-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(Namespace),
		Labels: pulumi.StringMap{"pod-security.kubernetes.io/enforce": pulumi.String("restricted"), "pod-security.kubernetes.io/enforce-version": pulumi.String("v1.37"),
			"app.kubernetes.io/managed-by": pulumi.String("kplane")}}}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := corev1.NewConfigMap(ctx, name+"-realm", &corev1.ConfigMapArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-realm-" + a.Realm), Namespace: ns.Metadata.Name(),
			Labels: pulumi.StringMap{RealmLabel: pulumi.String(a.Realm), "app.kubernetes.io/managed-by": pulumi.String("kplane")}},
		Data: pulumi.StringMap{"realm.json": pulumi.String(string(realmJSON))},
	}, parent); err != nil {
		return nil, err
	}
	group := func(g string) rbacv1.SubjectArray {
		return rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("Group"), Name: pulumi.String(a.Prefix + g), ApiGroup: pulumi.String("rbac.authorization.k8s.io")}}
	}
	for _, t := range a.Teams {
		for _, n := range t.Namespaces {
			if _, err := rbacv1.NewRoleBinding(ctx, fmt.Sprintf("%s-%s-%s", name, t.Name, n), &rbacv1.RoleBindingArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-oidc-" + t.Name), Namespace: pulumi.String(n), Labels: labels},
				RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: pulumi.String(t.ClusterRole)},
				Subjects: group(t.Name),
			}, parent); err != nil {
				return nil, err
			}
		}
	}
	// Platform administrators: every namespaced resource in every namespace (ClusterRole admin),
	// not cluster-admin (kept for break-glass accounts outside Keycloak). Auditors read (view).
	for _, b := range []struct{ group, role string }{{a.AdminGroup, "admin"}, {a.AuditorGroup, "view"}} {
		if _, err := rbacv1.NewClusterRoleBinding(ctx, fmt.Sprintf("%s-%s", name, b.group), &rbacv1.ClusterRoleBindingArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-oidc-" + b.group), Labels: labels},
			RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: pulumi.String(b.role)},
			Subjects: group(b.group),
		}, parent); err != nil {
			return nil, err
		}
	}
	r.Issuer = pulumi.String(a.Issuer()).ToStringOutput()
	r.AuthenticationConfig = pulumi.String(authn).ToStringOutput()
	r.RealmJSON = pulumi.String(string(realmJSON)).ToStringOutput()
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"issuer": r.Issuer, "authenticationConfig": r.AuthenticationConfig, "realmJson": r.RealmJSON})
}
