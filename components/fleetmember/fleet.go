package fleetmember

import (
	"cmp"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/kplane/kplane/internal/field"
)

// FleetArgs are an environment's fleet (kplane:fleet in environments/<env>/fleet.yaml): the
// management cluster, the platform every member receives, and the members.
type FleetArgs struct {
	Environment string `json:"environment"`
	// Management is the management cluster's kubeconfig (Argo CD, Rancher).
	Management      string        `json:"management"`
	ArgoCDNamespace string        `json:"argoCDNamespace,omitempty"`
	Platform        *PlatformArgs `json:"platform,omitempty"`
	Clusters        []ClusterArgs `json:"clusters"`
	Rancher         *Rancher      `json:"rancher,omitempty"`
	// Login: people log in to the management cluster's Argo CD through the identity realm.
	Login *Login `json:"login,omitempty"`
}

// ClusterArgs is one member: its kubeconfig (an administrator's, for registration and rendering),
// the server its syncing Argo CD reaches (push: default the kubeconfig's; pull: the in-cluster
// address), labels, values, namespaces, and mode (push, the default, or pull: its own Argo CD
// syncs it, in argoCDNamespace on the member).
//
// Values are the member's layer of the platform: per capability (security, identity, mesh,
// gateway, backup, images), a JSON merge patch laid over the environment file's kplane:<key>
// (which lies over the components' defaults), e.g. {security: {admission: {mode: audit}}}.
// Namespaces are those whose Deployments its health check waits for (default: every namespace
// of its render).
type ClusterArgs struct {
	Name       string            `json:"name"`
	Kubeconfig string            `json:"kubeconfig"`
	Mode       Mode              `json:"mode,omitempty"`
	Server     string            `json:"server,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Values     map[string]any    `json:"values,omitempty"`
	Namespaces []string          `json:"namespaces,omitempty"`
	// Prometheus is the URL of the member's own Prometheus, which the management Prometheus
	// federates (kplane-fleet prometheus writes its configuration).
	Prometheus string `json:"prometheus,omitempty"`
}

// Capabilities are the platform's config keys (kplane:<key> of the environment file) a member's
// values may lie over.
var Capabilities = []string{"security", "identity", "mesh", "gateway", "backup", "images"}

// Validate returns every error in the fleet's arguments, each at its path (clusters[1].name).
// What needs the clusters themselves (their CA, the providers) is checked per member when the
// stack registers it.
func (f FleetArgs) Validate() error {
	var errs field.ErrorList
	if !dnsLabel.MatchString(f.Environment) {
		errs.Add(field.Invalid(field.At("environment"), f.Environment, "required, e.g. prod"))
	}
	if f.Management == "" {
		errs.Add(field.Required(field.At("management"), "the management cluster's kubeconfig (its path)"))
	}
	if p := f.Platform; p != nil {
		errs.Merge(field.At("platform"), p.withFleet(f).Validate())
	}
	if l := f.Login; l != nil {
		errs.Merge(field.At("login"), l.Validate())
	}
	seen := map[string]bool{}
	for i, cl := range f.Clusters {
		p := field.At("clusters[%d]", i)
		errs = append(errs, memberFields(p, cl.Name, cl.Mode, cl.Labels, cl.Namespaces)...)
		if seen[cl.Name] {
			errs.Add(field.Invalid(p.Child("name"), cl.Name, "used twice; each cluster needs its own"))
		}
		seen[cl.Name] = true
		if cl.Kubeconfig == "" {
			errs.Add(field.Required(p.Child("kubeconfig"), "its path"))
		}
		for _, key := range slices.Sorted(maps.Keys(cl.Values)) {
			if !slices.Contains(Capabilities, key) {
				errs.Add(field.Invalid(p.Child("values").Key(key), nil, "not a capability of the platform (one of "+strings.Join(Capabilities, ", ")+"): a member's values lie over its environment's kplane:<capability>"))
			}
		}
		if u, err := url.Parse(cl.Prometheus); cl.Prometheus != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			errs.Add(field.Invalid(p.Child("prometheus"), cl.Prometheus, "the URL of the member's Prometheus (https://host[:port][/path])"))
		}
		if cl.Mode == Pull && f.Platform == nil {
			errs.Add(field.Required(field.At("platform"), "with a member in mode pull (the charts its own Argo CD syncs)"))
		}
	}
	return errs.OrNil()
}

// withFleet is the platform with the fleet's environment and Argo CD unless it says otherwise.
func (p PlatformArgs) withFleet(f FleetArgs) PlatformArgs {
	p.Environment = cmp.Or(p.Environment, f.Environment)
	p.ArgoCDNamespace = cmp.Or(p.ArgoCDNamespace, f.ArgoCDNamespace)
	return p
}
