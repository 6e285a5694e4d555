// Package fleetmember registers clusters with the platform's management cluster: an Argo CD cluster
// entry with credentials made on the member from what its render holds, optionally a Rancher
// import, and the ApplicationSets that sync each member's rendered platform and admission
// policies (platform.go, rendered.go); or, in pull mode, the entry and the member's Applications
// beside the member's own Argo CD. The wave runner (package rollout) gates the rollout.
package fleetmember

import (
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
	// Labels go on its Argo CD entry (e.g. region, tier): the ApplicationSets' generator sees them.
	Labels map[string]string `json:"labels,omitempty"`
	// Rendered is the member's render (kplane-fleet render): its kinds are what the member's
	// credentials allow (nil: registered with no rights to deploy anything).
	Rendered *Rendered `json:"rendered,omitempty"`
	// ArgoCDNamespace is where the syncing Argo CD runs: on the management cluster (push) or on
	// the member (pull); default argocd.
	ArgoCDNamespace string `json:"argoCDNamespace,omitempty"`
	// Mode is push (default): the management cluster's Argo CD syncs the member through its entry
	// there; or pull: the member's own Argo CD syncs it from Git, with the same narrow credentials,
	// and nothing of the member goes on the management cluster (docs/components/fleet.md).
	Mode Mode `json:"mode,omitempty"`
	// Platform is the environment's platform; pull mode puts its AppProjects and the member's two
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
	errs := memberFields(root, a.Name, a.Mode, a.Labels, nil)
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
		if a.Platform.Environment != a.Environment {
			errs.Addf(root.Child("platform", "environment"), a.Platform.Environment, "the member's environment is %q", a.Environment)
		}
	}
	if a.Platform != nil && a.Rendered == nil {
		errs.Add(field.Required(root.Child("rendered"), "with a platform: the member's render (kplane-fleet render --env "+a.Environment+")"))
	}
	if r := a.Rendered; r != nil && (r.Cluster != a.Name || r.Environment != a.Environment) {
		errs.Addf(root.Child("rendered"), nil, "rendered for %s/%s, not %s/%s", r.Environment, r.Cluster, a.Environment, a.Name)
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

// Member is a registered cluster.
type Member struct {
	pulumi.ResourceState
	Name pulumi.StringOutput `pulumi:"name"`
}

// NewMember validates args, then creates the member's fleet namespace, Argo CD's ServiceAccount,
// its token, its credentials from the member's render (credentials), the Argo CD cluster entry
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
	grants, err := credentials(ctx, name, a, sa, managed, on)
	if err != nil {
		return nil, err
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
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-cluster-" + a.Name), Namespace: pulumi.String(a.ArgoCDNamespace), Labels: labels},
		// Every namespace and cluster-scoped kinds: what Argo CD may read there is the reader
		// role's (the render's kinds), what it may change the deployers' it impersonates.
		StringData: pulumi.StringMap{"name": pulumi.String(a.Name), "server": pulumi.String(a.Server), "clusterResources": pulumi.String("true"),
			"config": pulumi.ToSecret(config).(pulumi.StringOutput)},
	}, argo...)
	if err != nil {
		return nil, err
	}
	if a.Mode == Pull {
		// The AppProjects, then the member's Applications in them, after what they sync with (and
		// deleted before it: nothing syncs with credentials being removed).
		p := *a.Platform
		p.ArgoCDNamespace, p.Rendered = a.ArgoCDNamespace, []*Rendered{a.Rendered}
		deps := append(grants, entry)
		for _, obj := range p.MemberObjects(a.Name, a.Server) {
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

// credentials are what the member's Argo CD entry (sa) may do, from the member's render: read
// the render's kinds (kplane-fleet-reader) and impersonate the two deployers, each allowed its
// folder's kinds — the platform's deployer also escalate and bind on roles, as it installs the
// platform's RBAC (Istio's, Gatekeeper's ...), the policies' deployer nothing else.
func credentials(ctx *pulumi.Context, name string, a MemberArgs, sa *corev1.ServiceAccount, managed pulumi.StringMap, on []pulumi.ResourceOption) ([]pulumi.Resource, error) {
	r := a.Rendered
	if r == nil {
		return nil, nil
	}
	subject := func(sa string) rbacv1.SubjectArray {
		return rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(sa), Namespace: pulumi.String(MemberNamespace)}}
	}
	var out []pulumi.Resource
	grant := func(id, role string, rules []Rule, who, why string) error {
		var pr rbacv1.PolicyRuleArray
		for _, rule := range rules {
			pr = append(pr, rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray(rule.Groups), Resources: pulumi.ToStringArray(rule.Resources),
				Verbs: pulumi.ToStringArray(rule.Verbs)})
		}
		md := &metav1.ObjectMetaArgs{Name: pulumi.String(role), Labels: managed}
		if why != "" {
			md.Annotations = pulumi.StringMap{wellknown.EscalationReasonAnnotation: pulumi.String(why)}
		}
		cr, err := rbacv1.NewClusterRole(ctx, name+"-"+id, &rbacv1.ClusterRoleArgs{Metadata: md, Rules: pr}, on...)
		if err != nil {
			return err
		}
		b, err := rbacv1.NewClusterRoleBinding(ctx, name+"-"+id, &rbacv1.ClusterRoleBindingArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(role), Labels: managed},
			RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: cr.Metadata.Name().Elem()},
			Subjects: subject(who)}, on...)
		out = append(out, b)
		return err
	}
	write := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	platform, why := rules(r.Platform, write...), ""
	if slices.ContainsFunc(r.Platform, func(k Kind) bool { return k.Group == "rbac.authorization.k8s.io" }) {
		platform = append(platform, Rule{Groups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles", "roles"}, Verbs: []string{"bind", "escalate"}})
		why = "installs the rendered platform's own roles and bindings (its components' RBAC); only Argo CD's platform AppProject syncs as it, from the platform's render"
	}
	for _, d := range []struct {
		sa, role, why string
		rules         []Rule
	}{{PlatformDeployer, "kplane-fleet-platform-deployer", why, platform}, {PolicyDeployer, "kplane-fleet-policy-deployer", "", rules(r.Policies, write...)}} {
		if _, err := corev1.NewServiceAccount(ctx, name+"-"+d.sa, &corev1.ServiceAccountArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(d.sa),
			Namespace: pulumi.String(MemberNamespace), Labels: managed}, AutomountServiceAccountToken: pulumi.Bool(false)}, append(slices.Clone(on), pulumi.DependsOn([]pulumi.Resource{sa}))...); err != nil {
			return nil, err
		}
		if err := grant(d.sa, d.role, d.rules, d.sa, d.why); err != nil {
			return nil, err
		}
	}
	if err := grant("reader", "kplane-fleet-argocd", rules(append(slices.Clone(r.Platform), r.Policies...), "get", "list", "watch"), "kplane-argocd", ""); err != nil {
		return nil, err
	}
	// The two deployers, in kplane's namespace only: a ServiceAccount of the same name elsewhere
	// cannot be impersonated.
	role, err := rbacv1.NewRole(ctx, name+"-impersonate", &rbacv1.RoleArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-fleet-argocd"),
		Namespace: pulumi.String(MemberNamespace), Labels: managed, Annotations: pulumi.StringMap{wellknown.EscalationReasonAnnotation: pulumi.String(
			"Argo CD syncs the platform and the admission policies as their two deployers, named here, and as nothing else")}}, Rules: rbacv1.PolicyRuleArray{rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{""}),
		Resources: pulumi.ToStringArray([]string{"serviceaccounts"}), ResourceNames: pulumi.ToStringArray([]string{PlatformDeployer, PolicyDeployer}),
		Verbs: pulumi.ToStringArray([]string{"impersonate"})}}}, append(slices.Clone(on), pulumi.DependsOn([]pulumi.Resource{sa}))...)
	if err != nil {
		return nil, err
	}
	b, err := rbacv1.NewRoleBinding(ctx, name+"-impersonate", &rbacv1.RoleBindingArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("kplane-fleet-argocd"),
		Namespace: pulumi.String(MemberNamespace), Labels: managed},
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: role.Metadata.Name().Elem()},
		Subjects: subject("kplane-argocd")}, on...)
	return append(out, b), err
}
