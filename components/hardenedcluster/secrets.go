package hardenedcluster

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/field"
)

// SecretsArgs keep service secrets in Vault and sync them into the cluster with the External
// Secrets Operator (its CRDs come from its chart). Each service logs in to Vault with its own
// ServiceAccount (Vault's Kubernetes auth: Vault verifies the token with a TokenReview) and may
// read only its own path.
type SecretsArgs struct {
	// VaultAddress is the Vault server, https://... (required when a service declares secrets).
	VaultAddress string `json:"vaultAddress,omitempty"`
	// VaultCABundle is the PEM of the CA that signed Vault's certificate (optional).
	VaultCABundle string `json:"vaultCABundle,omitempty"`
	// KubernetesAuthPath is the mount of Vault's Kubernetes auth method for this cluster.
	// Default "kubernetes"; one mount per cluster keeps clusters' roles apart.
	KubernetesAuthPath string `json:"kubernetesAuthPath,omitempty"`
	// KVMount is the KV version 2 secrets engine mount. Default "secret".
	KVMount string `json:"kvMount,omitempty"`
	// RefreshInterval is how often synced Secrets are refreshed from Vault, so a rotation in
	// Vault reaches the cluster within it. Default "1h"; between 1m and 24h.
	RefreshInterval string `json:"refreshInterval,omitempty"`
	// Bootstrap configures Vault from the cluster (a Job) and runs the rotations. Without it,
	// apply VaultPlan (the VaultPolicies output and the roles) with your own Vault tooling.
	Bootstrap *VaultBootstrapArgs `json:"bootstrap,omitempty"`
	// Operator installs the External Secrets Operator (official chart, pinned) when services
	// declare secrets.
	Operator OperatorArgs `json:"operator,omitempty"`
}

// OperatorArgs configure the installation of an upstream operator from its chart.
type OperatorArgs struct {
	// External: the operator is installed and run by someone else (its CRDs must exist).
	External bool `json:"external,omitempty"`
	// Chart overrides where the official chart comes from (a mirror, or Path when air-gapped).
	Chart addon.Chart `json:"chart,omitempty"`
	// Values are chart values laid over kplane's.
	Values map[string]any `json:"values,omitempty"`
}

// ExternalSecretsChart is the official External Secrets Operator chart kplane installs.
var ExternalSecretsChart = addon.Chart{Repo: "https://charts.external-secrets.io", Name: "external-secrets", Version: "1.3.2"}

// ExternalSecretsNamespace is where the operator runs.
const ExternalSecretsNamespace = "external-secrets"

// newSecretsOperator installs the External Secrets Operator; it returns what the stores wait for.
func newSecretsOperator(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) ([]pulumi.Resource, error) {
	op := args.Secrets.Operator
	if op.External || len(args.VaultPolicies()) == 0 {
		return nil, nil
	}
	ns, err := corev1.NewNamespace(ctx, name+"-eso-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{
		Name: pulumi.String(ExternalSecretsNamespace), Labels: pulumi.ToStringMap(NamespaceLabels(Team{Name: "platform"}, args.podSecurityVersion())),
	}}, opts...)
	if err != nil {
		return nil, err
	}
	values := addon.Merge(map[string]any{
		"installCRDs": true,
		// One operator per cluster, watching every namespace; its own pods meet the baseline.
		"podSecurityContext": map[string]any{"runAsNonRoot": true, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
	}, op.Values)
	release, err := helmv4.NewChart(ctx, name+"-external-secrets", op.Chart.Or(ExternalSecretsChart).Args("external-secrets", ExternalSecretsNamespace, values),
		append(opts, pulumi.DependsOn([]pulumi.Resource{ns}))...)
	if err != nil {
		return nil, err
	}
	return []pulumi.Resource{release}, nil
}

// ServiceSecret is one Kubernetes Secret a service gets from Vault: all keys stored at
// <KVMount>/<namespace>/<service>/<Name>.
type ServiceSecret struct {
	Name string `json:"name"` // name of the Kubernetes Secret and of the Vault entry
	// Rotate regenerates keys of the secret on a schedule (needs Secrets.Bootstrap).
	Rotate *Rotation `json:"rotate,omitempty"`
}

func (a *Args) secretsDefaults() SecretsArgs {
	s := a.Secrets
	if s.KubernetesAuthPath == "" {
		s.KubernetesAuthPath = "kubernetes"
	}
	if s.KVMount == "" {
		s.KVMount = "secret"
	}
	if s.RefreshInterval == "" {
		s.RefreshInterval = "1h"
	}
	return s
}

func (a *Args) validateSecrets() field.ErrorList {
	var errs field.ErrorList
	uses := false
	for i, svc := range a.Services {
		seen := map[string]bool{}
		for j, sec := range svc.Secrets {
			uses = true
			if !dns1123Label.MatchString(sec.Name) || seen[sec.Name] {
				errs.Add(field.Invalid(field.Root().Child("services").Index(i).Child("secrets").Index(j).Child("name"), sec.Name, "a unique DNS-1123 label"))
			}
			seen[sec.Name] = true
		}
	}
	p := field.Root().Child("secrets")
	if !uses {
		if a.Secrets.Bootstrap != nil {
			errs.Add(field.Invalid(p.Child("bootstrap"), nil, "no service declares secrets; remove it or add services[].secrets"))
		}
		return errs
	}
	s := a.secretsDefaults()
	u, err := url.Parse(s.VaultAddress)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		errs.Add(field.Invalid(p.Child("vaultAddress"), s.VaultAddress, "services declare secrets, so give Vault's https:// address (secrets never travel in clear text)"))
	}
	d, err := time.ParseDuration(s.RefreshInterval)
	if err != nil || d < time.Minute || d > 24*time.Hour {
		errs.Add(field.Invalid(p.Child("refreshInterval"), s.RefreshInterval, `a duration between 1m and 24h (e.g. "1h"); it bounds how long a rotated secret takes to reach the cluster`))
	}
	if !s.Operator.External {
		errs.Merge(p.Child("operator", "chart"), s.Operator.Chart.Or(ExternalSecretsChart).Validate())
	}
	for _, m := range []struct{ key, v string }{{"kubernetesAuthPath", s.KubernetesAuthPath}, {"kvMount", s.KVMount}} {
		if strings.ContainsAny(m.v, " *\"'") || strings.HasPrefix(m.v, "/") {
			errs.Add(field.Invalid(p.Child(m.key), m.v, `a Vault mount path like "kubernetes" or "kv/team"`))
		}
	}
	return append(errs, a.validateVaultBootstrap()...)
}

// vaultRole is the Vault role of a service: bound to its ServiceAccount in its namespace.
func vaultRole(s Service) string { return s.Namespace + "-" + s.Name }

// VaultPolicies renders, per service with secrets, the Vault policy (HCL) that lets its role read
// its own path and nothing else. The Vault side (policy, and a role of the Kubernetes auth
// method bound to the ServiceAccount name and namespace) is applied from these by the Vault
// bootstrap; the component outputs them as VaultPolicies.
func (a *Args) VaultPolicies() map[string]string {
	s := a.secretsDefaults()
	out := map[string]string{}
	for _, svc := range a.Services {
		if len(svc.Secrets) == 0 {
			continue
		}
		out[vaultRole(svc)] = fmt.Sprintf("# kplane: %s/%s reads its own secrets only (CIS 5.4.2, ISMS-P 2.7.1)\n"+
			"path \"%s/data/%s/%s/*\" {\n  capabilities = [\"read\"]\n}\n", svc.Namespace, svc.Name, s.KVMount, svc.Namespace, svc.Name)
	}
	return out
}

// newServiceSecrets creates, per service with secrets, a SecretStore that logs in as the
// service's ServiceAccount, and an ExternalSecret per secret.
func newServiceSecrets(ctx *pulumi.Context, name string, args *Args, accounts map[string]pulumi.Resource, opts ...pulumi.ResourceOption) error {
	operator, err := newSecretsOperator(ctx, name, args, opts...)
	if err != nil {
		return err
	}
	s := args.secretsDefaults()
	labels := pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}
	for _, svc := range args.Services {
		if len(svc.Secrets) == 0 {
			continue
		}
		vault := map[string]any{
			"server": s.VaultAddress, "path": s.KVMount, "version": "v2",
			"auth": map[string]any{"kubernetes": map[string]any{
				"mountPath": s.KubernetesAuthPath, "role": vaultRole(svc),
				"serviceAccountRef": map[string]any{"name": svc.Name},
			}},
		}
		if s.VaultCABundle != "" {
			vault["caBundle"] = base64.StdEncoding.EncodeToString([]byte(s.VaultCABundle))
		}
		storeName := "kplane-vault-" + svc.Name
		dep := pulumi.DependsOn(append([]pulumi.Resource{accounts[svc.Namespace+"/"+svc.Name]}, operator...))
		store, err := apiextensions.NewCustomResource(ctx, fmt.Sprintf("%s-%s-%s-store", name, svc.Namespace, svc.Name), &apiextensions.CustomResourceArgs{
			ApiVersion:  pulumi.String("external-secrets.io/v1"),
			Kind:        pulumi.String("SecretStore"),
			Metadata:    &metav1.ObjectMetaArgs{Name: pulumi.String(storeName), Namespace: pulumi.String(svc.Namespace), Labels: labels},
			OtherFields: kubernetes.UntypedArgs{"spec": map[string]any{"provider": map[string]any{"vault": vault}}},
		}, append(opts, dep)...)
		if err != nil {
			return err
		}
		secrets := append([]ServiceSecret(nil), svc.Secrets...)
		sort.Slice(secrets, func(i, j int) bool { return secrets[i].Name < secrets[j].Name })
		for _, sec := range secrets {
			if _, err := apiextensions.NewCustomResource(ctx, fmt.Sprintf("%s-%s-%s-%s", name, svc.Namespace, svc.Name, sec.Name), &apiextensions.CustomResourceArgs{
				ApiVersion: pulumi.String("external-secrets.io/v1"),
				Kind:       pulumi.String("ExternalSecret"),
				Metadata:   &metav1.ObjectMetaArgs{Name: pulumi.String(sec.Name), Namespace: pulumi.String(svc.Namespace), Labels: labels},
				OtherFields: kubernetes.UntypedArgs{"spec": map[string]any{
					"refreshInterval": s.RefreshInterval,
					"secretStoreRef":  map[string]any{"kind": "SecretStore", "name": storeName},
					"target":          map[string]any{"name": sec.Name, "creationPolicy": "Owner"},
					"dataFrom":        []any{map[string]any{"extract": map[string]any{"key": svc.Namespace + "/" + svc.Name + "/" + sec.Name}}},
				}},
			}, append(opts, pulumi.DependsOn([]pulumi.Resource{store}))...); err != nil {
				return err
			}
		}
	}
	return nil
}
