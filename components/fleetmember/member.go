// Package fleetmember registers clusters with the platform's management cluster: an Argo CD cluster
// entry with least-privilege credentials made on the member, optionally a Rancher import, and
// the labels and values that drive the platform chart and policy templates per cluster
// (ApplicationSets, platform.go); or, in pull mode, the entry and the member's Applications
// beside the member's own Argo CD. The wave runner (package rollout) gates the rollout.
package fleetmember

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	yamlv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/yaml/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

const (
	// MemberNamespace holds what kplane puts on a member for the fleet.
	MemberNamespace = "kplane-fleet"
)

// MemberArgs: one cluster of the fleet.
type MemberArgs struct {
	// Name of the cluster in the fleet.
	Name string `json:"name"`
	// Environment the cluster belongs to (a label, and the middle values layer).
	Environment string `json:"environment"`
	// Server is the member's API server as the syncing Argo CD reaches it (push: the management
	// cluster's; pull: the member's own, default https://kubernetes.default.svc); CAData its CA (PEM).
	Server string `json:"server"`
	CAData string `json:"caData"`
	// Labels drive per-cluster values and policy templates (e.g. region, tier, policy-mode).
	Labels map[string]string `json:"labels,omitempty"`
	// Values are the cluster's layer of the platform chart's values.
	Values map[string]any `json:"values,omitempty"`
	// Namespaces Argo CD deploys into on the member: created and bound there, nothing else
	// (default kplane-system).
	Namespaces []string `json:"namespaces,omitempty"`
	// ArgoCDNamespace is where the syncing Argo CD runs: on the management cluster (push) or on
	// the member (pull); default argocd.
	ArgoCDNamespace string `json:"argoCDNamespace,omitempty"`
	// Mode is push (default): the management cluster's Argo CD syncs the member through its entry
	// there; or pull: the member's own Argo CD syncs it from Git, with the same narrow credentials,
	// and nothing of the member goes on the management cluster (docs/components/fleet.md).
	Mode Mode `json:"mode,omitempty"`
	// Platform is the environment's platform; pull mode puts its AppProject and the member's two
	// Applications on the member (the ApplicationSets do it for push members).
	Platform *PlatformArgs `json:"platform,omitempty"`
	// Rancher also imports the cluster into Rancher (nil: not).
	Rancher *Rancher `json:"rancher,omitempty"`
	// RancherAgent is the registration manifest Rancher issued for the member
	// (RancherRegistration; it holds the registration token, so it is made a Pulumi secret),
	// applied on the member with its provider; nil until Rancher issued it.
	RancherAgent pulumi.StringInput `json:"-"`
	// Member and Management are the providers of the member and of the management cluster (which
	// a pull member needs only with Rancher).
	Member     pulumi.ProviderResource `json:"-"`
	Management pulumi.ProviderResource `json:"-"`
}

// Rancher import: the provisioning Cluster on the management cluster, in Rancher's fleet
// workspace (default fleet-default). Rancher then issues the registration manifest the member
// applies (docs/components/fleet.md).
type Rancher struct {
	Workspace string `json:"workspace,omitempty"`
}

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	labelKey = regexp.MustCompile(`^([a-z0-9]([a-z0-9.-]*[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
)

// Mode is how a member is synced.
type Mode string

// The modes: push (the management cluster's Argo CD syncs the member) or pull (its own does).
const (
	Push Mode = "push"
	Pull Mode = "pull"
)

// InClusterServer is how Argo CD running in a cluster reaches that cluster's API server.
const InClusterServer = "https://kubernetes.default.svc"

// Validate returns every error, each at its argument's path (name, labels[k] ...).
func (a MemberArgs) Validate() error {
	root := field.Root()
	pull := a.Mode == Pull
	errs := memberFields(root, a.Name, a.Mode, a.Labels, a.Namespaces)
	if !dnsLabel.MatchString(a.Environment) {
		errs.Add(field.Invalid(root.Child("environment"), a.Environment, "required, e.g. prod"))
	}
	if !strings.HasPrefix(a.Server, "https://") && !(pull && a.Server == "") {
		errs.Add(field.Invalid(root.Child("server"), a.Server, "the API server's https:// URL as the management cluster reaches it"))
	}
	if !strings.Contains(a.CAData, "BEGIN CERTIFICATE") {
		errs.Add(field.Required(root.Child("caData"), "the API server's CA (PEM)"))
	}
	if a.Member == nil || (a.Management == nil && (!pull || a.Rancher != nil)) {
		errs.Add(field.Required(root.Child("member"), "member and management providers are both required (pull mode without Rancher: the member's alone)"))
	}
	switch {
	case pull && a.Platform == nil:
		errs.Add(field.Required(root.Child("platform"), "with mode pull (the charts the member's own Argo CD syncs)"))
	case pull:
		errs.Merge(root.Child("platform"), a.Platform.Validate())
		if ns := cmp.Or(a.Platform.Namespace, "kplane-system"); !slices.Contains(a.withDefaults().Namespaces, ns) {
			errs.Addf(root.Child("namespaces"), nil, "add the platform's namespace %s (Argo CD may deploy into these only)", ns)
		}
		if a.Platform.Environment != a.Environment {
			errs.Addf(root.Child("platform", "environment"), a.Platform.Environment, "the member's environment is %q", a.Environment)
		}
	}
	if r := a.Rancher; r != nil && r.Workspace != "" && !dnsLabel.MatchString(r.Workspace) {
		errs.Add(field.Invalid(root.Child("rancher", "workspace"), r.Workspace, "a Rancher fleet workspace's name"))
	}
	if a.RancherAgent != nil && a.Rancher == nil {
		errs.Add(field.Required(root.Child("rancher"), "with rancherAgent (the agent registers with the Rancher that imports the cluster)"))
	}
	return errs.OrNil()
}

// memberFields checks what a member and its entry in the fleet's config share, at p.
func memberFields(p *field.Path, name string, mode Mode, labels map[string]string, namespaces []string) field.ErrorList {
	var errs field.ErrorList
	if !dnsLabel.MatchString(name) || len(name) > 40 {
		errs.Add(field.Invalid(p.Child("name"), name, "lower-case letters, digits and dashes, at most 40"))
	}
	errs.Add(field.Enum(p.Child("mode"), mode, "", Push, Pull))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if !labelKey.MatchString(k) || strings.HasPrefix(k, wellknown.Prefix) {
			errs.Add(field.Invalid(p.Child("labels").Key(k), nil, "not a label key of yours (kplane.io/ is kplane's)"))
		}
	}
	for i, ns := range namespaces {
		if !dnsLabel.MatchString(ns) || ns == MemberNamespace || ns == "kube-system" || ns == "default" {
			errs.Addf(p.Child("namespaces").Index(i), ns, "a namespace of the platform's (not %s, kube-system or default)", MemberNamespace)
		}
	}
	return errs
}

func (a MemberArgs) withDefaults() MemberArgs {
	if len(a.Namespaces) == 0 {
		a.Namespaces = []string{"kplane-system"}
	}
	if a.ArgoCDNamespace == "" {
		a.ArgoCDNamespace = "argocd"
	}
	if a.Mode == "" {
		a.Mode = Push
	}
	if a.Mode == Pull && a.Server == "" {
		a.Server = InClusterServer
	}
	if a.Rancher != nil && a.Rancher.Workspace == "" {
		a.Rancher = &Rancher{Workspace: "fleet-default"}
	}
	return a
}

// DeployerRules are what Argo CD may do in a member's platform namespaces: the platform chart's
// kinds, nothing cluster-wide.
var DeployerRules = []struct{ Groups, Resources []string }{
	{[]string{""}, []string{"configmaps", "secrets", "services", "serviceaccounts", "persistentvolumeclaims"}},
	{[]string{"apps"}, []string{"deployments", "statefulsets", "daemonsets"}},
	{[]string{"batch"}, []string{"jobs", "cronjobs"}},
	{[]string{"networking.k8s.io"}, []string{"networkpolicies", "ingresses"}},
	{[]string{"rbac.authorization.k8s.io"}, []string{"roles", "rolebindings"}},
	{[]string{"policy"}, []string{"poddisruptionbudgets"}},
	{[]string{"autoscaling"}, []string{"horizontalpodautoscalers"}},
}

// Member is a registered cluster.
type Member struct {
	pulumi.ResourceState
	Name pulumi.StringOutput `pulumi:"name"`
}

// NewMember validates args, then creates the member's fleet namespace, Argo CD's ServiceAccount,
// its token, the deployer role bound in the platform namespaces only, the Argo CD cluster entry
// (the token a Pulumi secret) on the management cluster — in pull mode on the member, with the
// AppProject and the member's Applications — and the Rancher import.
func NewMember(ctx *pulumi.Context, name string, args *MemberArgs, opts ...pulumi.ResourceOption) (*Member, error) {
	r := &Member{}
	args, err := component.Register(ctx, "FleetMember", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	a := args.withDefaults()
	on := []pulumi.ResourceOption{pulumi.Parent(r), pulumi.Provider(a.Member)}
	managed := pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), wellknown.MemberLabel: pulumi.String(a.Name)}
	// kplane's namespaces on the member hold the restricted Pod Security Standard, pinned.
	nsLabels := pulumi.StringMap{"pod-security.kubernetes.io/enforce": pulumi.String("restricted"), "pod-security.kubernetes.io/enforce-version": pulumi.String(k8sobj.PodSecurityVersion)}
	for k, v := range managed {
		nsLabels[k] = v
	}
	ns, err := corev1.NewNamespace(ctx, name+"-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(MemberNamespace), Labels: nsLabels}}, on...)
	if err != nil {
		return nil, err
	}
	sa, err := corev1.NewServiceAccount(ctx, name+"-sa", &corev1.ServiceAccountArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-argocd"),
		Namespace: ns.Metadata.Name(), Labels: managed}}, on...)
	if err != nil {
		return nil, err
	}
	// A long-lived token for Argo CD's cluster entry (rotated by replacing this Secret).
	token, err := corev1.NewSecret(ctx, name+"-token", &corev1.SecretArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-argocd-token"),
		Namespace: ns.Metadata.Name(), Labels: managed, Annotations: pulumi.StringMap{"kubernetes.io/service-account.name": sa.Metadata.Name().Elem(),
			// The token controller fills it in: wait for it (its output then carries the token).
			"pulumi.com/waitFor": pulumi.String("jsonpath={.data.token}"), "pulumi.com/timeoutSeconds": pulumi.String("120")}},
		Type: pulumi.String("kubernetes.io/service-account-token")}, on...)
	if err != nil {
		return nil, err
	}
	var bindings []pulumi.Resource
	var rules rbacv1.PolicyRuleArray
	for _, rule := range DeployerRules {
		rules = append(rules, rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray(rule.Groups), Resources: pulumi.ToStringArray(rule.Resources),
			Verbs: pulumi.ToStringArray([]string{"get", "list", "watch", "create", "update", "patch", "delete"})})
	}
	role, err := rbacv1.NewClusterRole(ctx, name+"-deployer", &rbacv1.ClusterRoleArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-fleet-deployer"), Labels: managed},
		Rules: rules}, on...)
	if err != nil {
		return nil, err
	}
	for _, target := range a.Namespaces {
		tns, err := corev1.NewNamespace(ctx, name+"-target-"+target, &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(target), Labels: nsLabels}}, on...)
		if err != nil {
			return nil, err
		}
		binding, err := rbacv1.NewRoleBinding(ctx, name+"-deployer-"+target, &rbacv1.RoleBindingArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-fleet-deployer"), Namespace: tns.Metadata.Name(), Labels: managed},
			RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: role.Metadata.Name().Elem()},
			Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: sa.Metadata.Name().Elem(), Namespace: pulumi.String(MemberNamespace)}},
		}, on...)
		if err != nil {
			return nil, err
		}
		bindings = append(bindings, binding)
	}
	// Argo CD's cluster entry with the token, never an admin kubeconfig: on the management cluster
	// (push), or beside the member's own Argo CD (pull).
	mgmt := []pulumi.ResourceOption{pulumi.Parent(r), pulumi.Provider(a.Management)}
	argo := mgmt
	if a.Mode == Pull {
		argo = on
	}
	labels := pulumi.StringMap{"argocd.argoproj.io/secret-type": pulumi.String("cluster"), wellknown.MemberLabel: pulumi.String(a.Name),
		wellknown.EnvironmentLabel: pulumi.String(a.Environment), wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		labels[k] = pulumi.String(a.Labels[k])
	}
	values, err := yaml.Marshal(a.Values)
	if err != nil {
		return nil, fmt.Errorf("fleet: cluster %s: values: %w", a.Name, err)
	}
	if len(a.Values) == 0 {
		values = []byte("{}\n")
	}
	config := token.Data.ApplyT(func(d map[string]string) (string, error) {
		raw, err := base64.StdEncoding.DecodeString(d["token"])
		if err != nil || len(raw) == 0 {
			return "", fmt.Errorf("fleet: cluster %s: the ServiceAccount token was not issued (is the token controller running?)", a.Name)
		}
		cfg, err := json.Marshal(map[string]any{"bearerToken": string(raw),
			"tlsClientConfig": map[string]any{"insecure": false, "caData": base64.StdEncoding.EncodeToString([]byte(a.CAData))}})
		return string(cfg), err
	}).(pulumi.StringOutput)
	entry, err := corev1.NewSecret(ctx, name+"-argocd-cluster", &corev1.SecretArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-cluster-" + a.Name), Namespace: pulumi.String(a.ArgoCDNamespace), Labels: labels,
			Annotations: pulumi.StringMap{wellknown.ValuesAnnotation: pulumi.String(string(values))}},
		StringData: pulumi.StringMap{"name": pulumi.String(a.Name), "server": pulumi.String(a.Server),
			"namespaces": pulumi.String(strings.Join(a.Namespaces, ",")), "clusterResources": pulumi.String("false"),
			"config": pulumi.ToSecret(config).(pulumi.StringOutput)},
	}, argo...)
	if err != nil {
		return nil, err
	}
	if a.Mode == Pull {
		// The AppProject, then the member's Applications in it, after what they sync with (and
		// deleted before it: nothing syncs into a namespace being removed).
		p := *a.Platform
		p.ArgoCDNamespace = a.ArgoCDNamespace
		deps := append(bindings, entry)
		for _, obj := range p.MemberObjects(a.Name, a.Server, string(values), a.Labels["policy-mode"]) {
			res, err := k8sobj.Object(ctx, fmt.Sprintf("%s-%s", name, obj["metadata"].(map[string]any)["name"]), obj, append(slices.Clone(on), pulumi.DependsOn(deps))...)
			if err != nil {
				return nil, err
			}
			if obj["kind"] == "AppProject" {
				deps = append(deps, res)
			}
		}
	}
	if rc := a.Rancher; rc != nil {
		rl := map[string]any{wellknown.MemberLabel: a.Name, wellknown.EnvironmentLabel: a.Environment}
		for k, v := range a.Labels {
			rl[k] = v
		}
		if _, err := k8sobj.Object(ctx, name+"-rancher", map[string]any{"apiVersion": "provisioning.cattle.io/v1", "kind": "Cluster",
			"metadata": map[string]any{"name": a.Name, "namespace": rc.Workspace, "labels": rl},
			"spec":     map[string]any{}}, mgmt...); err != nil {
			return nil, err
		}
		if a.RancherAgent != nil { // the cattle-cluster-agent connects the member to Rancher
			if _, err := yamlv2.NewConfigGroup(ctx, name+"-rancher-agent", &yamlv2.ConfigGroupArgs{
				Yaml: pulumi.ToSecret(a.RancherAgent).(pulumi.StringOutput), SkipAwait: pulumi.Bool(true)}, on...); err != nil {
				return nil, err
			}
		}
	}
	r.Name = pulumi.String(a.Name).ToStringOutput()
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"name": r.Name})
}
