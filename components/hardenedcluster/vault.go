package hardenedcluster

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/hardenedcluster/vaultbootstrap"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/jobpod"
)

// VaultBootstrapArgs run the Vault bootstrap in the cluster (kplane-vault, built from
// cmd/kplane-vault): the Kubernetes auth method,
// KV v2, a policy and role per service, and the rotator's role, from the component's plan.
type VaultBootstrapArgs struct {
	// Image runs kplane-vault, pinned by digest.
	Image string `json:"image"`
	// TokenSecret names a Secret in SecretsNamespace with key "token": a Vault token allowed to
	// configure auth methods, mounts and policies. Create it out of band (it is never in
	// kplane's state or arguments); revoke it after the bootstrap if you like, the next change
	// of the plan needs a fresh one.
	TokenSecret string `json:"tokenSecret"`
	// KubernetesHost is the API server URL as Vault reaches it (https://...).
	KubernetesHost string `json:"kubernetesHost"`
	// KubernetesCACert is the PEM of the API server's CA, for Vault.
	KubernetesCACert string `json:"kubernetesCaCert,omitempty"`
}

// Rotation regenerates keys of a secret on a schedule (kplane-vault rotate as a CronJob). The
// rotated values reach the cluster within Secrets.RefreshInterval.
type Rotation struct {
	// Keys to regenerate, e.g. ["password"]; other keys of the secret are kept.
	Keys []string `json:"keys"`
	// Schedule is a cron schedule, e.g. "0 4 1 * *" (monthly).
	Schedule string `json:"schedule"`
	// Length is the random bytes per value (default 32).
	Length int `json:"length,omitempty"`
}

// SecretsNamespace holds the Vault bootstrap and the rotation jobs.
const SecretsNamespace = "kplane-secrets"

// Vault identities of kplane's own jobs.
const (
	reviewerAccount = "kplane-vault-reviewer"
	rotatorAccount  = "kplane-secret-rotator"
)

func (a *Args) validateVaultBootstrap() field.ErrorList {
	var errs field.ErrorList
	b := a.Secrets.Bootstrap
	for i, svc := range a.Services {
		for j, sec := range svc.Secrets {
			r := sec.Rotate
			if r == nil {
				continue
			}
			p := field.Root().Child("services").Index(i).Child("secrets").Index(j).Child("rotate")
			if b == nil {
				errs.Add(field.Invalid(p, nil, "rotation runs with the Vault bootstrap; set secrets.bootstrap"))
			}
			if len(r.Keys) == 0 {
				errs.Add(field.Required(p.Child("keys"), `list the keys to regenerate, e.g. ["password"]`))
			}
			for k, key := range r.Keys {
				if key == "" || strings.ContainsAny(key, ", ") {
					errs.Add(field.Invalid(p.Child("keys").Index(k), key, "not a key name"))
				}
			}
			if len(strings.Fields(r.Schedule)) != 5 {
				errs.Add(field.Invalid(p.Child("schedule"), r.Schedule, `a cron schedule of five fields, e.g. "0 4 1 * *"`))
			}
			if r.Length != 0 && (r.Length < 16 || r.Length > 128) {
				errs.Add(field.Invalid(p.Child("length"), r.Length, "between 16 and 128 random bytes"))
			}
		}
	}
	if b == nil {
		return errs
	}
	p := field.Root().Child("secrets", "bootstrap")
	if !a.Admission.AllowImageTags && !addon.Pinned(b.Image) {
		errs.Add(field.Invalid(p.Child("image"), b.Image, "build kplane-vault into an image and pin it by digest (image@sha256:...)"))
	}
	if !dns1123Label.MatchString(b.TokenSecret) {
		errs.Addf(p.Child("tokenSecret"), b.TokenSecret, `the name of a Secret in %s holding a Vault token (key "token")`, SecretsNamespace)
	}
	if u, err := url.Parse(b.KubernetesHost); err != nil || u.Scheme != "https" || u.Host == "" {
		errs.Add(field.Invalid(p.Child("kubernetesHost"), b.KubernetesHost, "the API server's https:// URL as Vault reaches it"))
	}
	return errs
}

// rotated lists the rotated secrets' KV paths with their service and settings.
type rotatedSecret struct {
	svc  Service
	sec  ServiceSecret
	path string // under the KV mount
}

func (a *Args) rotatedSecrets() []rotatedSecret {
	var out []rotatedSecret
	for _, svc := range a.Services {
		for _, sec := range svc.Secrets {
			if sec.Rotate != nil {
				out = append(out, rotatedSecret{svc, sec, svc.Namespace + "/" + svc.Name + "/" + sec.Name})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// VaultPlan is the Vault configuration the bootstrap applies: the services' policies and roles,
// and the rotator's, which may create and patch the rotated secrets and read their version,
// never their values.
func (a *Args) VaultPlan() vaultbootstrap.Plan {
	s := a.secretsDefaults()
	plan := vaultbootstrap.Plan{AuthPath: s.KubernetesAuthPath, KVMount: s.KVMount, Policies: a.VaultPolicies()}
	if b := s.Bootstrap; b != nil {
		plan.KubernetesHost, plan.KubernetesCACert = b.KubernetesHost, b.KubernetesCACert
	}
	for _, svc := range a.Services {
		if len(svc.Secrets) > 0 {
			role := vaultRole(svc)
			plan.Roles = append(plan.Roles, vaultbootstrap.Role{Name: role, ServiceAccount: svc.Name, Namespace: svc.Namespace, Policies: []string{role}, TTL: "1h"})
		}
	}
	if rotated := a.rotatedSecrets(); len(rotated) > 0 {
		var hcl strings.Builder
		hcl.WriteString("# kplane: the rotator writes new versions of the rotated secrets; it cannot read them\n")
		for _, r := range rotated {
			fmt.Fprintf(&hcl, "path \"%s/data/%s\" {\n  capabilities = [\"create\", \"patch\"]\n}\n", s.KVMount, r.path)
			fmt.Fprintf(&hcl, "path \"%s/metadata/%s\" {\n  capabilities = [\"read\"]\n}\n", s.KVMount, r.path)
		}
		plan.Policies[rotatorAccount] = hcl.String()
		plan.Roles = append(plan.Roles, vaultbootstrap.Role{Name: rotatorAccount, ServiceAccount: rotatorAccount, Namespace: SecretsNamespace, Policies: []string{rotatorAccount}, TTL: "10m"})
	}
	return plan
}

// newVaultBootstrap creates the secrets namespace, the token reviewer identity Vault verifies
// service tokens with, the plan, the bootstrap Job (named after the plan's hash: a changed plan
// runs again) and a rotation CronJob per rotated secret.
func newVaultBootstrap(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) error {
	b := args.Secrets.Bootstrap
	if b == nil {
		return nil
	}
	labels := pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), wellknown.NameLabel: pulumi.String("kplane-vault")}
	ns, err := corev1.NewNamespace(ctx, name+"-secrets-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{
		Name:   pulumi.String(SecretsNamespace),
		Labels: pulumi.ToStringMap(NamespaceLabels(Team{Name: "platform"}, args.podSecurityVersion())),
	}}, opts...)
	if err != nil {
		return err
	}
	after := append(opts, pulumi.DependsOn([]pulumi.Resource{ns}))
	meta := func(n string) *metav1.ObjectMetaArgs {
		return &metav1.ObjectMetaArgs{Name: pulumi.String(n), Namespace: pulumi.String(SecretsNamespace), Labels: labels}
	}
	// The reviewer: Vault calls TokenReview with its token (system:auth-delegator, nothing else).
	reviewer, err := corev1.NewServiceAccount(ctx, name+"-vault-reviewer", &corev1.ServiceAccountArgs{Metadata: meta(reviewerAccount), AutomountServiceAccountToken: pulumi.Bool(false)}, after...)
	if err != nil {
		return err
	}
	if _, err := rbacv1.NewClusterRoleBinding(ctx, name+"-vault-reviewer", &rbacv1.ClusterRoleBindingArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-vault-token-reviewer"), Labels: labels},
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: pulumi.String("system:auth-delegator")},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(reviewerAccount), Namespace: pulumi.String(SecretsNamespace)}},
	}, opts...); err != nil {
		return err
	}
	// Vault keeps the reviewer's token: a token Secret bound to the ServiceAccount (revoked with it).
	reviewerToken := meta(reviewerAccount + "-token")
	reviewerToken.Annotations = pulumi.StringMap{"kubernetes.io/service-account.name": pulumi.String(reviewerAccount)}
	if _, err := corev1.NewSecret(ctx, name+"-vault-reviewer-token", &corev1.SecretArgs{Metadata: reviewerToken, Type: pulumi.String("kubernetes.io/service-account-token")},
		append(after, pulumi.DependsOn([]pulumi.Resource{reviewer}))...); err != nil {
		return err
	}
	plan, err := json.MarshalIndent(args.VaultPlan(), "", "  ")
	if err != nil {
		return err
	}
	if _, err := corev1.NewConfigMap(ctx, name+"-vault-plan", &corev1.ConfigMapArgs{Metadata: meta("kplane-vault-plan"), Data: pulumi.StringMap{"plan.json": pulumi.String(string(plan))}}, after...); err != nil {
		return err
	}
	for _, sa := range []string{"kplane-vault-bootstrap", rotatorAccount} {
		if _, err := corev1.NewServiceAccount(ctx, name+"-"+sa, &corev1.ServiceAccountArgs{Metadata: meta(sa), AutomountServiceAccountToken: pulumi.Bool(false)}, after...); err != nil {
			return err
		}
	}
	vaultEnv := corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("VAULT_ADDR"), Value: pulumi.String(args.Secrets.VaultAddress)}}
	volumes := corev1.VolumeArray{}
	mounts := corev1.VolumeMountArray{}
	if args.Secrets.VaultCABundle != "" {
		if _, err := corev1.NewConfigMap(ctx, name+"-vault-ca", &corev1.ConfigMapArgs{Metadata: meta("kplane-vault-ca"), Data: pulumi.StringMap{"ca.crt": pulumi.String(args.Secrets.VaultCABundle)}}, after...); err != nil {
			return err
		}
		vaultEnv = append(vaultEnv, corev1.EnvVarArgs{Name: pulumi.String("VAULT_CACERT"), Value: pulumi.String("/vault-ca/ca.crt")})
		volumes = append(volumes, corev1.VolumeArgs{Name: pulumi.String("vault-ca"), ConfigMap: corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String("kplane-vault-ca")}})
		mounts = append(mounts, corev1.VolumeMountArgs{Name: pulumi.String("vault-ca"), MountPath: pulumi.String("/vault-ca"), ReadOnly: pulumi.Bool(true)})
	}
	bootstrapEnv := append(append(corev1.EnvVarArray{}, vaultEnv...), corev1.EnvVarArgs{Name: pulumi.String("VAULT_TOKEN"), ValueFrom: corev1.EnvVarSourceArgs{
		SecretKeyRef: corev1.SecretKeySelectorArgs{Name: pulumi.String(b.TokenSecret), Key: pulumi.String("token")},
	}})
	bootstrapVolumes := append(append(corev1.VolumeArray{}, volumes...),
		corev1.VolumeArgs{Name: pulumi.String("plan"), ConfigMap: corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String("kplane-vault-plan")}},
		corev1.VolumeArgs{Name: pulumi.String("reviewer"), Secret: corev1.SecretVolumeSourceArgs{SecretName: pulumi.String(reviewerAccount + "-token")}})
	bootstrapMounts := append(append(corev1.VolumeMountArray{}, mounts...),
		corev1.VolumeMountArgs{Name: pulumi.String("plan"), MountPath: pulumi.String("/plan"), ReadOnly: pulumi.Bool(true)},
		corev1.VolumeMountArgs{Name: pulumi.String("reviewer"), MountPath: pulumi.String("/reviewer"), ReadOnly: pulumi.Bool(true)})
	hash := fmt.Sprintf("%x", sha256.Sum256(plan))[:10]
	if _, err := batchv1.NewJob(ctx, name+"-vault-bootstrap", &batchv1.JobArgs{
		Metadata: meta("kplane-vault-bootstrap-" + hash),
		Spec: batchv1.JobSpecArgs{
			BackoffLimit: pulumi.Int(4), TtlSecondsAfterFinished: pulumi.Int(7 * 24 * 3600),
			Template: corev1.PodTemplateSpecArgs{Metadata: &metav1.ObjectMetaArgs{Labels: labels}, Spec: jobpod.Pod{Name: "kplane-vault", Image: b.Image, ServiceAccount: "kplane-vault-bootstrap",
				Args: []string{"bootstrap", "--plan=/plan/plan.json", "--reviewer-token-file=/reviewer/token"}, Env: bootstrapEnv, Volumes: bootstrapVolumes, Mounts: bootstrapMounts}.Spec()},
		},
	}, append(after, pulumi.DeleteBeforeReplace(true))...); err != nil {
		return err
	}
	s := args.secretsDefaults()
	for _, r := range args.rotatedSecrets() {
		length := r.sec.Rotate.Length
		if length == 0 {
			length = 32
		}
		cmd := []string{"rotate", "--mount=" + s.KVMount, "--auth-path=" + s.KubernetesAuthPath, "--role=" + rotatorAccount,
			"--path=" + r.path, "--keys=" + strings.Join(r.sec.Rotate.Keys, ","), fmt.Sprintf("--length=%d", length)}
		if _, err := batchv1.NewCronJob(ctx, fmt.Sprintf("%s-rotate-%s-%s-%s", name, r.svc.Namespace, r.svc.Name, r.sec.Name), &batchv1.CronJobArgs{
			Metadata: meta(fmt.Sprintf("rotate-%s-%s-%s", r.svc.Namespace, r.svc.Name, r.sec.Name)),
			Spec: batchv1.CronJobSpecArgs{
				Schedule: pulumi.String(r.sec.Rotate.Schedule), ConcurrencyPolicy: pulumi.String("Forbid"),
				SuccessfulJobsHistoryLimit: pulumi.Int(12), FailedJobsHistoryLimit: pulumi.Int(3), // the runs' logs are the rotation evidence
				JobTemplate: batchv1.JobTemplateSpecArgs{Spec: batchv1.JobSpecArgs{BackoffLimit: pulumi.Int(3),
					Template: corev1.PodTemplateSpecArgs{Metadata: &metav1.ObjectMetaArgs{Labels: labels}, Spec: jobpod.Pod{Name: "kplane-vault", Image: b.Image, ServiceAccount: rotatorAccount, Token: true,
						Args: cmd, Env: vaultEnv, Volumes: volumes, Mounts: mounts}.Spec()},
				}},
			},
		}, after...); err != nil {
			return err
		}
	}
	return nil
}
