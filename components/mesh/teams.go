package mesh

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

// Team is a namespace onboarded into the mesh: sidecars injected by the tag (or a pinned
// revision), STRICT mutual TLS, ISTIO_MUTUAL to its services, and nothing reaches a service but
// the callers it declares.
type Team struct {
	Namespace string `json:"namespace"`
	// Existing: the namespace exists already (e.g. a hardened-cluster team namespace); the mesh
	// adds its labels instead of creating it.
	Existing bool `json:"existing,omitempty"`
	// Revision pins the namespace to one istiod revision (a canary); default: the tag.
	Revision string    `json:"revision,omitempty"`
	Services []Service `json:"services"`
}

// Service is one service of a team.
type Service struct {
	Name string `json:"name"`
	// ServiceAccount its pods run as (default: Name): callers are known by it.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Selector of its pods (default app=<name>).
	Selector map[string]string `json:"selector,omitempty"`
	// Callers allowed to call it: "<service>" of the same team, "<namespace>/<service>" of
	// another, or "gateway/<name>" for one of the mesh's gateways. None: nobody.
	Callers []string `json:"callers,omitempty"`
	// Route: how requests to it are routed (nil: plainly).
	Route *Route `json:"route,omitempty"`
}

var headerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

func (s Service) account() string {
	if s.ServiceAccount != "" {
		return s.ServiceAccount
	}
	return s.Name
}

func (s Service) selector() map[string]any {
	out := map[string]any{}
	for k, v := range s.Selector {
		out[k] = v
	}
	if len(out) == 0 {
		out["app"] = s.Name
	}
	return out
}

func validateTeams(teams []Team, revs, gateways map[string]bool) error {
	var errs field.ErrorList
	services := map[string]map[string]bool{} // namespace -> services
	for i, t := range teams {
		switch {
		case !dnsLabel.MatchString(t.Namespace) || services[t.Namespace] != nil:
			errs.Add(field.Invalid(field.At("teams[%d].namespace", i), t.Namespace, "unique namespace names"))
		case t.Namespace == SystemNamespace:
			errs.Add(field.Invalid(field.At("teams[%d].namespace", i), t.Namespace, "Istio's own namespace; choose another"))
		case t.Revision != "" && !revs[t.Revision]:
			errs.Add(field.Invalid(field.At("teams[%d].revision", i), t.Revision, "not one of revisions"))
		}
		services[t.Namespace] = map[string]bool{}
		for j, s := range t.Services {
			if !dnsLabel.MatchString(s.Name) || services[t.Namespace][s.Name] {
				errs.Add(field.Invalid(field.At("teams[%d].services[%d].name", i, j), s.Name, "unique lower-case letters, digits and dashes"))
			}
			services[t.Namespace][s.Name] = true
		}
	}
	for i, t := range teams {
		for j, s := range t.Services {
			p := field.At("teams[%d].services[%d]", i, j)
			for k, c := range s.Callers {
				errs.Add(knownCaller(p.Child("callers").Index(k), c, t.Namespace, services, gateways))
			}
			if s.Route != nil {
				errs.Merge(p.Child("route"), s.Route.validate())
			}
		}
	}
	return errs.OrNil()
}

func knownCaller(p *field.Path, c, ns string, services map[string]map[string]bool, gateways map[string]bool) *field.Error {
	kind, name, qualified := strings.Cut(c, "/")
	switch {
	case !qualified:
		if !services[ns][c] {
			return field.Invalid(p, c, fmt.Sprintf(`not a service of %s (known: %s); another team's is "<namespace>/<service>"`, ns, strings.Join(slices.Sorted(maps.Keys(services[ns])), ", ")))
		}
	case kind == "gateway":
		if !gateways[name] {
			return field.Invalid(p, c, fmt.Sprintf("no gateway %q in gateways", name))
		}
	case services[kind] == nil:
		return field.Invalid(p, c, fmt.Sprintf("namespace %q is not a team of the mesh", kind))
	case !services[kind][name]:
		return field.Invalid(p, c, fmt.Sprintf("%q is not a service of %s (known: %s)", name, kind, strings.Join(slices.Sorted(maps.Keys(services[kind])), ", ")))
	}
	return nil
}

// principal is the SPIFFE identity (without spiffe://) of a caller.
func (a Args) principal(c, ns string) string {
	kind, name, qualified := strings.Cut(c, "/")
	switch {
	case !qualified:
		return fmt.Sprintf("%s/ns/%s/sa/%s", a.TrustDomain, ns, a.service(ns, c).account())
	case kind == "gateway":
		for _, g := range a.Gateways {
			if g.Name == name {
				return fmt.Sprintf("%s/ns/%s/sa/%s", a.TrustDomain, g.Namespace, g.Name)
			}
		}
	}
	return fmt.Sprintf("%s/ns/%s/sa/%s", a.TrustDomain, kind, a.service(kind, name).account())
}

func (a Args) service(ns, name string) Service {
	for _, t := range a.Teams {
		for _, s := range t.Services {
			if t.Namespace == ns && s.Name == name {
				return s
			}
		}
	}
	return Service{Name: name}
}

// teams registers each team's namespace labels and policies, and each service's routes.
func (a Args) teams(ctx *pulumi.Context, name string, opts ...pulumi.ResourceOption) error {
	for _, t := range a.Teams {
		labels := pulumi.StringMap{"istio.io/rev": pulumi.String(a.revisionOf(t.Revision))}
		var ns pulumi.Resource
		var err error
		if t.Existing {
			ns, err = corev1.NewNamespacePatch(ctx, name+"-ns-"+t.Namespace, &corev1.NamespacePatchArgs{
				Metadata: &metav1.ObjectMetaPatchArgs{Name: pulumi.String(t.Namespace), Labels: labels}}, opts...)
		} else {
			labels[wellknown.ManagedByLabel] = pulumi.String("kplane")
			ns, err = corev1.NewNamespace(ctx, name+"-ns-"+t.Namespace, &corev1.NamespaceArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(t.Namespace), Labels: labels}}, opts...)
		}
		if err != nil {
			return err
		}
		in := append(append([]pulumi.ResourceOption{}, opts...), pulumi.DependsOn([]pulumi.Resource{ns}))
		for _, obj := range a.teamObjects(t) {
			md := obj["metadata"].(map[string]any)
			if _, err := k8sobj.Object(ctx, fmt.Sprintf("%s-%s-%s-%s", name, t.Namespace, strings.ToLower(obj["kind"].(string)), md["name"]), obj, in...); err != nil {
				return err
			}
		}
	}
	return nil
}

// teamObjects are the Istio objects of a team: namespace-wide STRICT mTLS, ISTIO_MUTUAL to its
// services, deny-by-default, one allow-list per service, and its routes.
func (a Args) teamObjects(t Team) []map[string]any {
	obj := func(apiVersion, kind, name string, spec map[string]any) map[string]any {
		return map[string]any{"apiVersion": apiVersion, "kind": kind,
			"metadata": map[string]any{"name": name, "namespace": t.Namespace, "labels": managed()}, "spec": spec}
	}
	out := []map[string]any{
		obj("security.istio.io/v1", "PeerAuthentication", "default", map[string]any{"mtls": map[string]any{"mode": "STRICT"}}),
		obj("networking.istio.io/v1", "DestinationRule", "default-mtls", map[string]any{"host": "*." + t.Namespace + ".svc.cluster.local",
			"trafficPolicy": map[string]any{"tls": map[string]any{"mode": "ISTIO_MUTUAL"}}}),
		// An ALLOW policy without rules matches nothing: everything not allowed below is denied.
		obj("security.istio.io/v1", "AuthorizationPolicy", "deny-by-default", map[string]any{}),
	}
	for _, s := range t.Services {
		if len(s.Callers) > 0 {
			principals := []any{}
			for _, c := range s.Callers {
				principals = append(principals, a.principal(c, t.Namespace))
			}
			out = append(out, obj("security.istio.io/v1", "AuthorizationPolicy", "allow-"+s.Name, map[string]any{
				"selector": map[string]any{"matchLabels": s.selector()}, "action": "ALLOW",
				"rules": []any{map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": principals}}}}}}))
		}
		if s.Route != nil {
			host := s.Name + "." + t.Namespace + ".svc.cluster.local"
			out = append(out, obj("networking.istio.io/v1", "DestinationRule", s.Name, s.Route.destinationRule(host)),
				obj("networking.istio.io/v1", "VirtualService", s.Name, s.Route.virtualService(host)))
		}
	}
	return out
}
