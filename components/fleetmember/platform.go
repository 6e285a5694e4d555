package fleetmember

import (
	"cmp"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

// PlatformArgs: the composed platform on every member of an environment, rendered per member
// by `kplane-fleet render` into the platform's Git repository (Path/<env>/<cluster>: its
// platform/ and policies/ folders, Rendered) and synced by Argo CD: ApplicationSets that select
// only members the wave runner enabled (push), or the member's own Applications (pull). The
// platform and its policies are synced through two AppProjects whose allow-lists are the kinds
// the renders hold, each impersonating its own deployer on the member.
type PlatformArgs struct {
	Environment string `json:"environment"`
	// RepoURL and Revision of the Git repository holding the renders.
	RepoURL  string `json:"repoURL"`
	Revision string `json:"revision"`
	// Path is the renders' folder in the repository and in its checkout, where kplane-fleet runs
	// (default rendered).
	Path            string `json:"path,omitempty"`
	ArgoCDNamespace string `json:"argoCDNamespace,omitempty"`
	// Rendered are the environment's members' renders (their kinds make the allow-lists); the
	// fleet stack reads them from Path.
	Rendered []*Rendered `json:"-"`
}

// Validate names the argument and the fix.
func (a PlatformArgs) Validate() error {
	var errs field.ErrorList
	if !dnsLabel.MatchString(a.Environment) {
		errs.Add(field.Invalid(field.At("environment"), a.Environment, "required, e.g. prod"))
	}
	if u, err := url.Parse(a.RepoURL); err != nil || (u.Scheme != "https" && u.Scheme != "ssh") {
		errs.Add(field.Invalid(field.At("repoURL"), a.RepoURL, "the Git repository of the renders (https:// or ssh://)"))
	}
	if a.Revision == "" || a.Revision == "HEAD" {
		errs.Add(field.Invalid(field.At("revision"), a.Revision, "pin a tag or commit (HEAD rolls out whatever is pushed)"))
	}
	if a.Path != "" && (filepath.IsAbs(a.Path) || slices.Contains(strings.Split(filepath.ToSlash(a.Path), "/"), "..")) {
		errs.Add(field.Invalid(field.At("path"), a.Path, "a folder inside the repository (relative, no ..)"))
	}
	return errs.OrNil()
}

// Platform is the environment's AppProjects and ApplicationSets.
type Platform struct{ pulumi.ResourceState }

// ApplicationSetName is the platform ApplicationSet of an environment (and its AppProject).
func ApplicationSetName(env string) string { return "kplane-platform-" + env }

// PolicyApplicationSetName is the admission policies' ApplicationSet of an environment (and its
// AppProject).
func PolicyApplicationSetName(env string) string { return "kplane-policies-" + env }

// ApplicationSets are the names of the environment's ApplicationSets (a member's Applications
// are <name>-<member>).
func (a PlatformArgs) ApplicationSets() []string {
	return []string{ApplicationSetName(a.Environment), PolicyApplicationSetName(a.Environment)}
}

func (a PlatformArgs) withDefaults() PlatformArgs {
	a.Path = cmp.Or(a.Path, DefaultRenderedPath)
	a.ArgoCDNamespace = cmp.Or(a.ArgoCDNamespace, "argocd")
	return a
}

// The deployers a member's Argo CD entry impersonates: the platform's and the policies'.
const (
	PlatformDeployer = "kplane-platform-deployer"
	PolicyDeployer   = "kplane-policy-deployer"
)

// kinds are the union of the renders' platform (or policy) kinds.
func (a PlatformArgs) kinds(policies bool) []Kind {
	var out []Kind
	for _, r := range a.Rendered {
		if policies {
			out = append(out, r.Policies...)
		} else {
			out = append(out, r.Platform...)
		}
	}
	return out
}

// projects are the environment's two AppProjects for server ("*": any member): the renders'
// repository; the platform's allowed the platform's kinds, the policies' the policy kinds and
// nothing namespaced; each syncing as its deployer on the member (Argo CD's impersonation).
func (a PlatformArgs) projects(server string, labels map[string]any) []map[string]any {
	project := func(name, deployer, what string, kinds []Kind) map[string]any {
		spec := map[string]any{"description": what + " of " + a.Environment + " (kplane-fleet render)",
			"sourceRepos":                []any{a.RepoURL},
			"destinations":               []any{map[string]any{"server": server, "namespace": "*"}},
			"clusterResourceWhitelist":   nonNil(groupKinds(kinds, false)),
			"destinationServiceAccounts": []any{map[string]any{"server": server, "namespace": "*", "defaultServiceAccount": MemberNamespace + ":" + deployer}}}
		if namespaced := groupKinds(kinds, true); len(namespaced) > 0 {
			spec["namespaceResourceWhitelist"] = namespaced
		} else { // an empty whitelist allows every kind: deny them instead
			spec["namespaceResourceBlacklist"] = []any{map[string]any{"group": "*", "kind": "*"}}
		}
		return map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
			"metadata": map[string]any{"name": name, "namespace": a.ArgoCDNamespace, "labels": labels}, "spec": spec}
	}
	return []map[string]any{
		project(ApplicationSetName(a.Environment), PlatformDeployer, "the composed platform", a.kinds(false)),
		project(PolicyApplicationSetName(a.Environment), PolicyDeployer, "the admission policies", a.kinds(true)),
	}
}

func nonNil(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

// application is the spec of a member's Application of one rendered folder (path), in project,
// synced to server; automated sync (with prune and self-heal) when automated.
func (a PlatformArgs) application(project, path, server string, automated bool) map[string]any {
	// Retries ride out transient failures (a CRD not served yet) within about two minutes and take
	// the latest revision, so a fix pushed to Git is what the next attempt syncs.
	sync := map[string]any{"retry": map[string]any{"limit": 5, "refresh": true, "backoff": map[string]any{"duration": "5s", "factor": 2, "maxDuration": "1m"}},
		// Server-side apply: the platform's CRDs exceed client-side apply's annotation; custom
		// resources whose CRD the same sync creates are not dry-run before it exists.
		"syncOptions": []any{"ServerSideApply=true", "SkipDryRunOnMissingResource=true"}}
	if automated {
		sync["automated"] = AutomatedSync
	}
	return map[string]any{"project": project,
		"source":      map[string]any{"repoURL": a.RepoURL, "targetRevision": a.Revision, "path": path, "directory": map[string]any{"recurse": true}},
		"destination": map[string]any{"server": server, "namespace": MemberNamespace},
		"syncPolicy":  sync}
}

// AutomatedSync is the platform's Applications' automated sync: what the ApplicationSets'
// template has, and what the wave runner sets on a pull member's Applications to enable it.
var AutomatedSync = map[string]any{"prune": true, "selfHeal": true}

// folder is a member's rendered folder in the repository.
func (a PlatformArgs) folder(cluster, which string) string {
	return strings.Join([]string{strings.TrimSuffix(filepath.ToSlash(a.Path), "/"), a.Environment, cluster, which}, "/")
}

// Objects are the AppProjects and the two ApplicationSets (on the management cluster).
func (a PlatformArgs) Objects() []map[string]any {
	a = a.withDefaults()
	labels := map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy, wellknown.EnvironmentLabel: a.Environment}
	// Members of the environment the wave runner enabled, and nothing else.
	generators := []any{map[string]any{"clusters": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{
		wellknown.EnvironmentLabel: a.Environment, wellknown.RolloutLabel: wellknown.RolloutEnabled, "argocd.argoproj.io/secret-type": "cluster"}}}}}
	set := func(name, which string) map[string]any {
		return map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
			"metadata": map[string]any{"name": name, "namespace": a.ArgoCDNamespace, "labels": labels},
			// A member leaving the fleet keeps the platform it runs: deregistering stops managing
			// it, it does not uninstall its mesh or policies (no cascading finalizer).
			"spec": map[string]any{"goTemplate": true, "goTemplateOptions": []any{"missingkey=error"}, "generators": generators,
				"syncPolicy": map[string]any{"preserveResourcesOnDeletion": true},
				"template": map[string]any{
					"metadata": map[string]any{"name": name + "-{{.name}}", "labels": map[string]any{wellknown.MemberLabel: "{{.name}}"}},
					"spec":     a.application(name, a.folder("{{.name}}", which), "{{.server}}", true)}}}
	}
	return append(a.projects("*", labels),
		set(ApplicationSetName(a.Environment), RenderedPlatform),
		set(PolicyApplicationSetName(a.Environment), RenderedPolicies))
}

// MemberObjects are what a pull member's own Argo CD gets (in its namespace on the member): the
// AppProjects limited to server (first), and the member's two Applications — what the
// ApplicationSets would generate for it, without automated sync: the wave runner enables it.
func (a PlatformArgs) MemberObjects(cluster, server string) []map[string]any {
	a = a.withDefaults()
	labels := map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy, wellknown.EnvironmentLabel: a.Environment, wellknown.MemberLabel: cluster}
	app := func(set, which string) map[string]any {
		return map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": set + "-" + cluster, "namespace": a.ArgoCDNamespace, "labels": labels},
			"spec":     a.application(set, a.folder(cluster, which), server, false)}
	}
	return append(a.projects(server, labels),
		app(ApplicationSetName(a.Environment), RenderedPlatform),
		app(PolicyApplicationSetName(a.Environment), RenderedPolicies))
}

// NewPlatform registers the environment's AppProjects and ApplicationSets on the management
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
