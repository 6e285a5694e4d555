package fleetmember

import (
	"cmp"
	"fmt"
	"net/url"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

// PlatformArgs: the platform's add-ons on every member of an environment, from one chart with
// values layered common -> environment -> cluster, and the policy templates with per-cluster
// parameters, by Argo CD ApplicationSets that select only members the wave runner enabled.
type PlatformArgs struct {
	Environment string `json:"environment"`
	// RepoURL and Revision of the Git repository with the charts; ChartPath the platform chart
	// (its values/common.yaml and values/<environment>.yaml are the first two layers) and
	// PolicyChartPath the policy templates' chart (the hardened cluster's, rendered).
	RepoURL         string `json:"repoURL"`
	Revision        string `json:"revision"`
	ChartPath       string `json:"chartPath"`
	PolicyChartPath string `json:"policyChartPath"`
	// Namespaces the add-ons go to (the members' platform namespaces; default kplane-system).
	Namespace       string `json:"namespace,omitempty"`
	ArgoCDNamespace string `json:"argoCDNamespace,omitempty"`
}

// Validate names the argument and the fix.
func (a PlatformArgs) Validate() error {
	var errs field.ErrorList
	if !dnsLabel.MatchString(a.Environment) {
		errs.Add(field.Invalid(field.At("environment"), a.Environment, "required, e.g. prod"))
	}
	if u, err := url.Parse(a.RepoURL); err != nil || (u.Scheme != "https" && u.Scheme != "ssh") {
		errs.Add(field.Invalid(field.At("repoURL"), a.RepoURL, "the Git repository of the charts (https:// or ssh://)"))
	}
	if a.Revision == "" || a.Revision == "HEAD" {
		errs.Add(field.Invalid(field.At("revision"), a.Revision, "pin a tag or commit (HEAD rolls out whatever is pushed)"))
	}
	for _, c := range []struct{ key, path string }{{"chartPath", a.ChartPath}, {"policyChartPath", a.PolicyChartPath}} {
		if c.path == "" {
			errs.Add(field.Required(field.At("%s", c.key), "the chart's folder in the repository"))
		}
	}
	return errs.OrNil()
}

// Platform is the environment's ApplicationSets.
type Platform struct{ pulumi.ResourceState }

// ApplicationSetName is the platform ApplicationSet of an environment.
func ApplicationSetName(env string) string { return "kplane-platform-" + env }

// PolicyApplicationSetName is the policy templates' ApplicationSet of an environment.
func PolicyApplicationSetName(env string) string { return "kplane-policies-" + env }

// ApplicationSets are the names of the environment's ApplicationSets (a member's Applications
// are <name>-<member>).
func (a PlatformArgs) ApplicationSets() []string {
	return []string{ApplicationSetName(a.Environment), PolicyApplicationSetName(a.Environment)}
}

func (a PlatformArgs) withDefaults() PlatformArgs {
	if a.Namespace == "" {
		a.Namespace = "kplane-system"
	}
	if a.ArgoCDNamespace == "" {
		a.ArgoCDNamespace = "argocd"
	}
	return a
}

// project is the environment's AppProject: the charts' repository, the platform namespace on
// server ("*": any member), no cluster-scoped kinds.
func (a PlatformArgs) project(server string, labels map[string]any) map[string]any {
	return map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
		"metadata": map[string]any{"name": "kplane-" + a.Environment, "namespace": a.ArgoCDNamespace, "labels": labels},
		"spec": map[string]any{
			"description":  "kplane platform add-ons of " + a.Environment,
			"sourceRepos":  []any{a.RepoURL},
			"destinations": []any{map[string]any{"server": server, "namespace": a.Namespace}},
			// Namespaced kinds only: the members' credentials allow nothing cluster-wide anyway.
			"clusterResourceWhitelist": []any{}}}
}

// application is the spec of a member's Application of one chart (path) with its Helm settings,
// synced to server; automated sync (with prune and self-heal) when automated.
func (a PlatformArgs) application(path string, helm map[string]any, server string, automated bool) map[string]any {
	// Retries ride out transient failures (a CRD not served yet) within about two minutes and take
	// the latest revision, so a fix pushed to Git is what the next attempt syncs; a failed sync
	// keeps its values until its retries are over.
	sync := map[string]any{"retry": map[string]any{"limit": 5, "refresh": true, "backoff": map[string]any{"duration": "5s", "factor": 2, "maxDuration": "1m"}}}
	if automated {
		sync["automated"] = AutomatedSync
	}
	return map[string]any{"project": "kplane-" + a.Environment,
		"source":      map[string]any{"repoURL": a.RepoURL, "targetRevision": a.Revision, "path": path, "helm": helm},
		"destination": map[string]any{"server": server, "namespace": a.Namespace},
		"syncPolicy":  sync}
}

// AutomatedSync is the platform's Applications' automated sync: what the ApplicationSets'
// template has, and what the wave runner sets on a pull member's Applications to enable it.
var AutomatedSync = map[string]any{"prune": true, "selfHeal": true}

// platformHelm layers the platform chart's values: common -> environment -> the member's (YAML).
func (a PlatformArgs) platformHelm(values string) map[string]any {
	return map[string]any{"valueFiles": []any{"values/common.yaml", "values/" + a.Environment + ".yaml"}, "values": values}
}

// policyHelm is the policy templates' per-cluster parameters.
func (a PlatformArgs) policyHelm(cluster, mode string) map[string]any {
	return map[string]any{"parameters": []any{
		map[string]any{"name": "cluster", "value": cluster},
		map[string]any{"name": "mode", "value": mode},
		map[string]any{"name": "environment", "value": a.Environment}}}
}

// Objects are the AppProject and the two ApplicationSets (on the management cluster).
func (a PlatformArgs) Objects() []map[string]any {
	a = a.withDefaults()
	labels := map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy, wellknown.EnvironmentLabel: a.Environment}
	// Members of the environment the wave runner enabled, and nothing else.
	generators := []any{map[string]any{"clusters": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{
		wellknown.EnvironmentLabel: a.Environment, wellknown.RolloutLabel: wellknown.RolloutEnabled, "argocd.argoproj.io/secret-type": "cluster"}}}}}
	set := func(name, path string, helm map[string]any) map[string]any {
		return map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
			"metadata": map[string]any{"name": name, "namespace": a.ArgoCDNamespace, "labels": labels},
			"spec": map[string]any{"goTemplate": true, "goTemplateOptions": []any{"missingkey=error"}, "generators": generators,
				"template": map[string]any{
					"metadata": map[string]any{"name": name + "-{{.name}}", "labels": map[string]any{wellknown.MemberLabel: "{{.name}}"}},
					"spec":     a.application(path, helm, "{{.server}}", true)}}}
	}
	return []map[string]any{
		a.project("*", labels),
		set(ApplicationSetName(a.Environment), a.ChartPath, a.platformHelm(`{{ index .metadata.annotations "`+wellknown.ValuesAnnotation+`" }}`)),
		set(PolicyApplicationSetName(a.Environment), a.PolicyChartPath, a.policyHelm("{{.name}}", `{{ index .metadata.labels "policy-mode" | default "enforce" }}`)),
	}
}

// MemberObjects are what a pull member's own Argo CD gets (in its namespace on the member): the
// AppProject limited to server (first), and the member's two Applications — what the ApplicationSets
// would generate for it, without automated sync: the wave runner enables it.
func (a PlatformArgs) MemberObjects(cluster, server, values, policyMode string) []map[string]any {
	a = a.withDefaults()
	labels := map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy, wellknown.EnvironmentLabel: a.Environment, wellknown.MemberLabel: cluster}
	app := func(set, path string, helm map[string]any) map[string]any {
		return map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": set + "-" + cluster, "namespace": a.ArgoCDNamespace, "labels": labels},
			"spec":     a.application(path, helm, server, false)}
	}
	return []map[string]any{
		a.project(server, labels),
		app(ApplicationSetName(a.Environment), a.ChartPath, a.platformHelm(values)),
		app(PolicyApplicationSetName(a.Environment), a.PolicyChartPath, a.policyHelm(cluster, cmp.Or(policyMode, "enforce"))),
	}
}

// NewPlatform registers the environment's AppProject and ApplicationSets on the management
// cluster (opts carry its provider).
func NewPlatform(ctx *pulumi.Context, name string, args *PlatformArgs, opts ...pulumi.ResourceOption) (*Platform, error) {
	r := &Platform{}
	args, err := component.Register(ctx, "FleetPlatform", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	for _, obj := range args.Objects() {
		md := obj["metadata"].(map[string]any)
		if _, err := k8sobj.Object(ctx, fmt.Sprintf("%s-%s", name, md["name"]), obj, pulumi.Parent(r)); err != nil {
			return nil, err
		}
	}
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{})
}
