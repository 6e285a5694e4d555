package hardenedcluster

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/kplane/kplane/internal/field"
)

// Args configures a HardenedCluster. The zero value is the hardened result: every namespace
// enforces the Pod Security Standards "restricted" profile and every service gets only the
// access it declares.
type Args struct {
	// Teams own namespaces. Each namespace is created with Pod Security Admission labels.
	Teams []Team `json:"teams,omitempty"`
	// Services get a ServiceAccount and least-privilege RBAC each (CIS 5.1.x, KISA Master-04).
	Services []Service `json:"services,omitempty"`
	// Admission configures the admission baseline (ValidatingAdmissionPolicies on every workload).
	Admission AdmissionArgs `json:"admission,omitempty"`
	// Secrets configure Vault and the sync of services' secrets into the cluster.
	Secrets SecretsArgs `json:"secrets,omitempty"`
	// APIAccess limits who reaches the Kubernetes API endpoint, and how.
	APIAccess APIAccessArgs `json:"apiAccess,omitempty"`
	// ImageTrust requires cosign signatures on images (sigstore policy-controller).
	ImageTrust ImageTrustArgs `json:"imageTrust,omitempty"`
	// NodeChecks schedule the CIS 1.12 / KISA node check on every node pool.
	NodeChecks NodeCheckArgs `json:"nodeChecks,omitempty"`
	// PodSecurityVersion pins the Pod Security Standards version the namespaces enforce,
	// e.g. "v1.37". Default "latest" follows the API server's version. Pin it in production so an
	// API server upgrade cannot tighten or loosen admission unannounced.
	PodSecurityVersion string `json:"podSecurityVersion,omitempty"`
}

// Team is a group of people owning namespaces.
type Team struct {
	// Name is the team's DNS-1123 label, used in labels and names (required).
	Name string `json:"name,omitempty"`
	// Namespaces the team owns (at least one). Each gets the label kplane.io/team=<Name>.
	Namespaces []string `json:"namespaces,omitempty"`
	// OpenNetwork skips the namespaces' default isolation NetworkPolicy (same-namespace traffic
	// and DNS only; CIS 5.3.2). Default false.
	OpenNetwork bool `json:"openNetwork,omitempty"`
	// PodSecurity is the Pod Security Standards level enforced in the team's namespaces:
	// "restricted" (default; CIS 5.2.x, KISA Master-12) or "baseline". "privileged" is refused:
	// such workloads belong in a platform namespace with an audited exception.
	PodSecurity PodSecurityLevel `json:"podSecurity,omitempty"`
}

// Service is one workload identity with the Kubernetes API access it needs, no more.
type Service struct {
	// Name of the service (DNS-1123 label); the ServiceAccount and Role are named after it.
	Name string `json:"name,omitempty"`
	// Namespace the service runs in; must be one of a team's namespaces.
	Namespace string `json:"namespace,omitempty"`
	// Rules are namespaced permissions (Role + RoleBinding in Namespace).
	Rules []Rule `json:"rules,omitempty"`
	// ClusterRules are cluster-wide permissions (ClusterRole + ClusterRoleBinding); use only for
	// cluster-scoped resources (CIS 5.1.1: cluster-wide access only where required).
	ClusterRules []Rule `json:"clusterRules,omitempty"`
	// AutomountToken mounts the ServiceAccount token into pods. Default false (CIS 5.1.6):
	// only services that call the Kubernetes API need a token.
	AutomountToken bool `json:"automountToken,omitempty"`
	// Secrets are the Kubernetes Secrets the service gets from Vault (see Args.Secrets).
	Secrets []ServiceSecret `json:"secrets,omitempty"`
	// WildcardReason, when set, allows "*" in this service's rules (a CIS 5.1.3 deviation). The
	// reason is recorded on its Role/ClusterRole (kplane.io/wildcard-reason) for auditors.
	// Self-escalating verbs stay refused.
	WildcardReason string `json:"wildcardReason,omitempty"`
}

// Rule is one RBAC policy rule. Wildcards are refused (CIS 5.1.3).
type Rule struct {
	APIGroups     []string `json:"apiGroups,omitempty"` // "" is the core group
	Resources     []string `json:"resources"`
	Verbs         []string `json:"verbs"`
	ResourceNames []string `json:"resourceNames,omitempty"` // optional: narrow to named objects
}

var (
	dns1123Label   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	regexpWorkload = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	validVerbs     = map[string]bool{"get": true, "list": true, "watch": true, "create": true, "update": true, "patch": true, "delete": true, "deletecollection": true, "use": true, "approve": true, "sign": true}
)

// dangerousVerbs allow privilege escalation through RBAC itself (CIS 5.1.8).
var dangerousVerbs = map[string]bool{"bind": true, "escalate": true, "impersonate": true}

// PodSecurityLevel is a team namespace's Pod Security level.
type PodSecurityLevel string

// The levels a team namespace may have (privileged is refused).
const (
	Restricted PodSecurityLevel = "restricted"
	Baseline   PodSecurityLevel = "baseline"
)

// Validate checks the arguments and returns every error, each naming the argument's path
// (teams[0].name) and the fix.
func (a *Args) Validate() error {
	var errs field.ErrorList
	owners := a.validateTeams(&errs)
	seen := map[string]bool{}
	for i, s := range a.Services {
		p := field.Root().Child("services").Index(i)
		if !dns1123Label.MatchString(s.Name) {
			errs.Add(field.Invalid(p.Child("name"), s.Name, "must be a DNS-1123 label"))
		}
		if _, ok := owners[s.Namespace]; !ok {
			errs.Addf(p.Child("namespace"), s.Namespace, "not a team namespace; add it to a team's namespaces (known: %s)", strings.Join(slices.Sorted(maps.Keys(owners)), ", "))
		}
		key := s.Namespace + "/" + s.Name
		if seen[key] {
			errs.Addf(p.Child("name"), s.Name, "declared twice in namespace %q", s.Namespace)
		}
		seen[key] = true
		wildcards := strings.TrimSpace(s.WildcardReason) != ""
		for j, r := range s.Rules {
			errs.Add(r.validate(p.Child("rules").Index(j), wildcards)...)
		}
		for j, r := range s.ClusterRules {
			errs.Add(r.validate(p.Child("clusterRules").Index(j), wildcards)...)
		}
	}
	errs.Add(a.validateAdmission()...)
	errs.Add(a.validateImageTrust()...)
	errs.Add(a.validateAPIAccess()...)
	errs.Add(a.validateSecrets()...)
	errs.Add(a.validateNodeChecks()...)
	if v := a.PodSecurityVersion; v != "" && v != "latest" && !regexp.MustCompile(`^v1\.[0-9]+$`).MatchString(v) {
		errs.Add(field.Invalid(field.Root().Child("podSecurityVersion"), v, `use "latest" or a Kubernetes minor version like "v1.37"`))
	}
	return errs.OrNil()
}

// validateTeams checks the teams and returns the owner of each team namespace.
func (a *Args) validateTeams(errs *field.ErrorList) map[string]string {
	owners := map[string]string{}
	teams := map[string]bool{}
	for i, t := range a.Teams {
		p := field.Root().Child("teams").Index(i)
		if !dns1123Label.MatchString(t.Name) {
			errs.Add(field.Invalid(p.Child("name"), t.Name, "must be a DNS-1123 label (lowercase letters, digits, '-')"))
		}
		if teams[t.Name] {
			errs.Add(field.Invalid(p.Child("name"), t.Name, "declared twice; merge the two teams"))
		}
		teams[t.Name] = true
		if len(t.Namespaces) == 0 {
			errs.Add(field.Required(p.Child("namespaces"), fmt.Sprintf("team %q owns no namespace; list at least one", t.Name)))
		}
		if t.PodSecurity == "privileged" {
			errs.Add(field.Invalid(p.Child("podSecurity"), t.PodSecurity, `refused for team namespaces; use "baseline" or "restricted" and grant an exception to the one workload that needs more`))
		} else {
			errs.Add(field.Enum(p.Child("podSecurity"), t.PodSecurity, "", Restricted, Baseline))
		}
		for j, ns := range t.Namespaces {
			q := p.Child("namespaces").Index(j)
			switch other, owned := owners[ns]; {
			case !dns1123Label.MatchString(ns):
				errs.Add(field.Invalid(q, ns, "must be a DNS-1123 label"))
			case strings.HasPrefix(ns, "kube-") || ns == "default":
				errs.Add(field.Invalid(q, ns, "system namespaces cannot be team namespaces; choose another name"))
			case owned:
				errs.Addf(q, ns, "already owned by team %q; a namespace has one owner", other)
			default:
				owners[ns] = t.Name
			}
		}
	}
	return owners
}

func (r Rule) validate(p *field.Path, wildcards bool) field.ErrorList {
	var errs field.ErrorList
	if len(r.Resources) == 0 || len(r.Verbs) == 0 {
		errs.Add(field.Required(p, "a rule needs resources and verbs"))
	}
	for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
		if slices.Contains(list, "*") && !wildcards {
			errs.Add(field.Invalid(p, "*", `wildcard refused (CIS 5.1.3); list the API groups, resources and verbs the service needs, or set the service's wildcardReason`))
			break
		}
	}
	for j, v := range r.Verbs {
		if dangerousVerbs[v] {
			errs.Add(field.Invalid(p.Child("verbs").Index(j), v, "lets a service escalate its own privileges (CIS 5.1.8); remove it"))
		} else if v != "*" && !validVerbs[v] {
			errs.Add(field.Invalid(p.Child("verbs").Index(j), v, "unknown verb; use get, list, watch, create, update, patch, delete or deletecollection"))
		}
	}
	for j, res := range r.Resources {
		if res == "nodes/proxy" {
			errs.Add(field.Invalid(p.Child("resources").Index(j), res, "bypasses admission and audit (CIS 5.1.10 area); remove it"))
		}
	}
	return errs
}

func (a *Args) podSecurityVersion() string {
	if a.PodSecurityVersion == "" {
		return "latest"
	}
	return a.PodSecurityVersion
}
