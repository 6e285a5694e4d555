package identity

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/jobpod"
	"github.com/kplane/kplane/internal/k8sobj"
)

// Namespace holds the realm's representation (and, later, its sync Job).
const Namespace = "kplane-identity"

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
	r := &Realm{}
	args, err := component.Register(ctx, "IdentityRealm", name, args, r, opts...)
	if err != nil {
		return nil, err
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
	parent := pulumi.Parent(r)
	labels := pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), "app.kubernetes.io/part-of": pulumi.String("kplane-identity")}
	ns, err := corev1.NewNamespace(ctx, name+"-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(Namespace),
		Labels: pulumi.StringMap{"pod-security.kubernetes.io/enforce": pulumi.String("restricted"), "pod-security.kubernetes.io/enforce-version": pulumi.String(k8sobj.PodSecurityVersion),
			wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}}}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := corev1.NewConfigMap(ctx, name+"-realm", &corev1.ConfigMapArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(realmConfigMap(a)), Namespace: ns.Metadata.Name(),
			Labels: pulumi.StringMap{wellknown.RealmLabel: pulumi.String(a.Realm), wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}},
		Data: pulumi.StringMap{"realm.json": pulumi.String(string(realmJSON))},
	}, parent); err != nil {
		return nil, err
	}
	if a.Sync != nil {
		if err := syncJobs(ctx, name, a, realmJSON, ns, parent); err != nil {
			return nil, err
		}
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
	if a.Audit != nil {
		if err := auditPipeline(ctx, name, a, parent); err != nil {
			return nil, err
		}
	}
	r.Issuer = pulumi.String(a.Issuer()).ToStringOutput()
	r.AuthenticationConfig = pulumi.String(authn).ToStringOutput()
	r.RealmJSON = pulumi.String(string(realmJSON)).ToStringOutput()
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"issuer": r.Issuer, "authenticationConfig": r.AuthenticationConfig, "realmJson": r.RealmJSON})
}

func realmConfigMap(a Args) string { return "kplane-realm-" + a.Realm }

// syncJobs runs kplane-realm-sync in the cluster: a Job per realm change (named by the
// representation's hash, so `pulumi up` applies a change at once) and a CronJob that repairs drift.
func syncJobs(ctx *pulumi.Context, name string, a Args, realmJSON []byte, ns *corev1.Namespace, parent pulumi.ResourceOption) error {
	s := *a.Sync
	if s.Schedule == "" {
		s.Schedule = "*/15 * * * *"
	}
	meta := func(n string) *metav1.ObjectMetaArgs {
		return &metav1.ObjectMetaArgs{Name: pulumi.String(n), Namespace: ns.Metadata.Name(),
			Labels: pulumi.StringMap{wellknown.NameLabel: pulumi.String("kplane-realm-sync"), wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}}
	}
	if _, err := corev1.NewServiceAccount(ctx, name+"-sync", &corev1.ServiceAccountArgs{Metadata: meta("kplane-realm-sync"), AutomountServiceAccountToken: pulumi.Bool(false)}, parent); err != nil {
		return err
	}
	secret := jobpod.SecretEnv
	env := corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("KEYCLOAK_URL"), Value: pulumi.String(a.KeycloakURL)},
		secret("KEYCLOAK_ADMIN_USER", s.AdminSecret, "username"), secret("KEYCLOAK_ADMIN_PASSWORD", s.AdminSecret, "password")}
	if a.LDAP != nil {
		env = append(env, secret(strings.Trim(BindCredentialPlaceholder, "${}"), s.LDAPSecret, "bindPassword"))
	}
	for _, p := range a.IdentityProviders {
		if p.Type == "oidc" {
			env = append(env, secret(strings.Trim(p.SecretPlaceholder(), "${}"), s.IdentityProviderSecret, p.Alias))
		}
	}
	volumes := corev1.VolumeArray{corev1.VolumeArgs{Name: pulumi.String("realm"), ConfigMap: corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String(realmConfigMap(a))}}}
	mounts := corev1.VolumeMountArray{corev1.VolumeMountArgs{Name: pulumi.String("realm"), MountPath: pulumi.String("/realm"), ReadOnly: pulumi.Bool(true)}}
	if a.IssuerCA != "" {
		if _, err := corev1.NewConfigMap(ctx, name+"-keycloak-ca", &corev1.ConfigMapArgs{Metadata: meta("kplane-keycloak-ca"), Data: pulumi.StringMap{"ca.crt": pulumi.String(a.IssuerCA)}}, parent); err != nil {
			return err
		}
		env = append(env, corev1.EnvVarArgs{Name: pulumi.String("KEYCLOAK_CA_FILE"), Value: pulumi.String("/keycloak-ca/ca.crt")})
		volumes = append(volumes, corev1.VolumeArgs{Name: pulumi.String("keycloak-ca"), ConfigMap: corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String("kplane-keycloak-ca")}})
		mounts = append(mounts, corev1.VolumeMountArgs{Name: pulumi.String("keycloak-ca"), MountPath: pulumi.String("/keycloak-ca"), ReadOnly: pulumi.Bool(true)})
	}
	pod := corev1.PodTemplateSpecArgs{Metadata: &metav1.ObjectMetaArgs{Labels: pulumi.StringMap{wellknown.NameLabel: pulumi.String("kplane-realm-sync")}},
		Spec: jobpod.Pod{Name: "kplane-realm-sync", Image: s.Image, ServiceAccount: "kplane-realm-sync", Args: []string{"--realm=/realm/realm.json"},
			Env: env, Volumes: volumes, Mounts: mounts}.Spec()}
	hash := fmt.Sprintf("%x", sha256.Sum256(realmJSON))[:10]
	if _, err := batchv1.NewJob(ctx, name+"-sync", &batchv1.JobArgs{Metadata: meta("kplane-realm-sync-" + hash),
		Spec: batchv1.JobSpecArgs{BackoffLimit: pulumi.Int(4), TtlSecondsAfterFinished: pulumi.Int(7 * 24 * 3600), Template: pod}},
		parent, pulumi.DeleteBeforeReplace(true)); err != nil {
		return err
	}
	_, err := batchv1.NewCronJob(ctx, name+"-sync-schedule", &batchv1.CronJobArgs{Metadata: meta("kplane-realm-sync"),
		Spec: batchv1.CronJobSpecArgs{Schedule: pulumi.String(s.Schedule), ConcurrencyPolicy: pulumi.String("Forbid"),
			SuccessfulJobsHistoryLimit: pulumi.Int(3), FailedJobsHistoryLimit: pulumi.Int(3),
			JobTemplate: batchv1.JobTemplateSpecArgs{Spec: batchv1.JobSpecArgs{BackoffLimit: pulumi.Int(2), Template: pod}}}}, parent)
	return err
}
