package hardenedcluster

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// HardenedCluster is the security baseline of one cluster: team namespaces with Pod Security
// Admission, least-privilege RBAC per service, admission policies on every workload (in-process
// or Gatekeeper), image signatures and severity limits, Vault secrets with bootstrap and
// rotation, API access settings, node checks, and the audit policy and kubelet configuration the
// platform applies. Admission policies are cluster-scoped: one HardenedCluster per cluster.
type HardenedCluster struct {
	pulumi.ResourceState

	// Namespaces maps each team namespace's name to its live name (resolved once created).
	Namespaces pulumi.StringMapOutput `pulumi:"namespaces"`
	// ServiceAccounts maps "<namespace>/<service>" to the ServiceAccount's name.
	ServiceAccounts pulumi.StringMapOutput `pulumi:"serviceAccounts"`
	// AdmissionPolicies lists the ValidatingAdmissionPolicies installed (one binding each).
	AdmissionPolicies pulumi.StringArrayOutput `pulumi:"admissionPolicies"`
	// AllowedCIDRs are the networks allowed to reach the API endpoint, for the platform's
	// allow-list (APIAccess.AllowedCIDRs).
	AllowedCIDRs pulumi.StringArrayOutput `pulumi:"allowedCidrs"`
	// ClientCABundle is the PEM bundle for the API server's --client-ca-file (APIAccess.ClientCAs).
	ClientCABundle pulumi.StringOutput `pulumi:"clientCaBundle"`
	// VaultPolicies maps each Vault role ("<namespace>-<service>") to its policy (HCL), for the
	// Vault bootstrap: read on the service's own path only.
	VaultPolicies pulumi.StringMapOutput `pulumi:"vaultPolicies"`
	// AuditPolicy is the API server audit policy (CIS 3.2), for --audit-policy-file.
	AuditPolicy pulumi.StringOutput `pulumi:"auditPolicy"`
	// KubeletConfig is the hardened KubeletConfiguration for the node pools' bootstrap (CIS 4.2).
	KubeletConfig pulumi.StringOutput `pulumi:"kubeletConfig"`
}

// now is the clock exceptions expire by (a variable for tests).
var now = time.Now

// NewHardenedCluster validates args, then registers the component and its children. Pass the
// cluster's Kubernetes provider with pulumi.Provider(...) or pulumi.Providers(...).
func NewHardenedCluster(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*HardenedCluster, error) {
	c := &HardenedCluster{}
	args, err := component.Register(ctx, "HardenedCluster", name, args, c, opts...)
	if err != nil {
		return nil, err
	}
	parent := pulumi.Parent(c)

	namespaces, nsResources, err := newTeamNamespaces(ctx, name, args, parent)
	if err != nil {
		return nil, err
	}
	accounts, accountResources, err := newServiceRBAC(ctx, name, args.Services, nsResources, parent)
	if err != nil {
		return nil, err
	}
	if err := newServiceSecrets(ctx, name, args, accountResources, parent); err != nil {
		return nil, err
	}
	if err := newVaultBootstrap(ctx, name, args, parent); err != nil {
		return nil, err
	}
	var nsList []pulumi.Resource
	for _, ns := range slices.Sorted(maps.Keys(nsResources)) {
		nsList = append(nsList, nsResources[ns])
	}
	policies, err := newAdmission(ctx, name, args, now(), nsList, parent)
	if err != nil {
		return nil, err
	}
	if err := newExceptionExpiry(ctx, name, args, parent); err != nil {
		return nil, err
	}
	if err := newImageTrust(ctx, name, args, parent); err != nil {
		return nil, err
	}
	if err := newNodeChecks(ctx, name, args, parent); err != nil {
		return nil, err
	}
	c.Namespaces = namespaces.ToStringMapOutput()
	c.ServiceAccounts = accounts.ToStringMapOutput()
	c.AdmissionPolicies = pulumi.ToStringArray(policies).ToStringArrayOutput()
	c.AllowedCIDRs = pulumi.ToStringArray(args.APIAccess.AllowedCIDRs).ToStringArrayOutput()
	c.ClientCABundle = pulumi.String(args.APIAccess.ClientCAs).ToStringOutput()
	c.VaultPolicies = pulumi.ToStringMap(args.VaultPolicies()).ToStringMapOutput()
	c.AuditPolicy = pulumi.String(AuditPolicy()).ToStringOutput()
	c.KubeletConfig = pulumi.String(KubeletConfiguration()).ToStringOutput()
	return c, ctx.RegisterResourceOutputs(c, pulumi.Map{
		"namespaces":        c.Namespaces,
		"serviceAccounts":   c.ServiceAccounts,
		"admissionPolicies": c.AdmissionPolicies,
		"allowedCidrs":      c.AllowedCIDRs,
		"clientCaBundle":    c.ClientCABundle,
		"vaultPolicies":     c.VaultPolicies,
		"auditPolicy":       c.AuditPolicy,
		"kubeletConfig":     c.KubeletConfig,
	})
}

// namespaceLabels adds, to NamespaceLabels, the opt-in of policy-controller when images must be
// signed.
func (a *Args) namespaceLabels(t Team) map[string]string {
	labels := NamespaceLabels(t, a.podSecurityVersion())
	if len(a.ImageTrust.Keys) > 0 {
		labels[policyControllerInclude] = "true"
	}
	return labels
}

// NamespaceLabels are the labels of a team namespace: ownership, and Pod Security Admission
// enforce/audit/warn at the team's level, pinned to version (CIS 5.2.1, KISA Master-12).
func NamespaceLabels(t Team, version string) map[string]string {
	level := t.PodSecurity
	if level == "" {
		level = "restricted"
	}
	labels := map[string]string{
		wellknown.TeamLabel:      t.Name,
		wellknown.ManagedByLabel: wellknown.ManagedBy,
	}
	for _, mode := range []string{"enforce", "audit", "warn"} {
		labels["pod-security.kubernetes.io/"+mode] = string(level)
		labels["pod-security.kubernetes.io/"+mode+"-version"] = version
	}
	// Audit and warn always at restricted, so a baseline namespace still reports what keeps it
	// from the stricter profile.
	labels["pod-security.kubernetes.io/audit"] = "restricted"
	labels["pod-security.kubernetes.io/warn"] = "restricted"
	return labels
}

// newTeamNamespaces creates each team namespace (Pod Security labels, isolation unless the team
// opens it, a default ServiceAccount without tokens) and returns their names and resources.
func newTeamNamespaces(ctx *pulumi.Context, name string, args *Args, parent pulumi.ResourceOption) (pulumi.StringMap, map[string]*corev1.Namespace, error) {
	namespaces := pulumi.StringMap{}
	nsResources := map[string]*corev1.Namespace{}
	for _, t := range args.Teams {
		for _, ns := range t.Namespaces {
			res, err := corev1.NewNamespace(ctx, fmt.Sprintf("%s-ns-%s", name, ns), &corev1.NamespaceArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Name:   pulumi.String(ns),
					Labels: pulumi.ToStringMap(args.namespaceLabels(t)),
				},
			}, parent)
			if err != nil {
				return nil, nil, err
			}
			nsResources[ns] = res
			namespaces[ns] = res.Metadata.Name().Elem()
			if !t.OpenNetwork {
				var apiCIDRs []string
				if args.apiCallers()[ns] {
					apiCIDRs = args.APIAccess.EndpointCIDRs
				}
				if err := newNamespaceIsolation(ctx, name, ns, apiCIDRs, res, parent); err != nil {
					return nil, nil, err
				}
			}
			// The namespace's default ServiceAccount stops mounting tokens (CIS 5.1.5/5.1.6): pods
			// that need the API get a service identity of their own (Services).
			if _, err := corev1.NewServiceAccountPatch(ctx, fmt.Sprintf("%s-default-sa-%s", name, ns), &corev1.ServiceAccountPatchArgs{
				Metadata:                     &metav1.ObjectMetaPatchArgs{Name: pulumi.String("default"), Namespace: pulumi.String(ns)},
				AutomountServiceAccountToken: pulumi.Bool(false),
			}, parent, pulumi.DependsOn([]pulumi.Resource{res})); err != nil {
				return nil, nil, err
			}
		}
	}
	return namespaces, nsResources, nil
}
