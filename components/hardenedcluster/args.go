package hardenedcluster

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
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
	PodSecurity string `json:"podSecurity,omitempty"`
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

// Validate checks the arguments and returns an error naming the field and the fix.
func (a *Args) Validate() error {
	owners := map[string]string{}
	teams := map[string]bool{}
	for i, t := range a.Teams {
		f := fmt.Sprintf("Teams[%d]", i)
		if !dns1123Label.MatchString(t.Name) {
			return fmt.Errorf("%s.Name %q: must be a DNS-1123 label (lowercase letters, digits, '-')", f, t.Name)
		}
		if teams[t.Name] {
			return fmt.Errorf("%s.Name %q: declared twice; merge the two teams", f, t.Name)
		}
		teams[t.Name] = true
		if len(t.Namespaces) == 0 {
			return fmt.Errorf("%s.Namespaces: team %q owns no namespace; list at least one", f, t.Name)
		}
		switch t.PodSecurity {
		case "", "restricted", "baseline":
		case "privileged":
			return fmt.Errorf("%s.PodSecurity \"privileged\": refused for team namespaces; use \"baseline\" or \"restricted\" and grant a Gatekeeper exception to the one workload that needs more", f)
		default:
			return fmt.Errorf("%s.PodSecurity %q: use \"restricted\" (default) or \"baseline\"", f, t.PodSecurity)
		}
		for j, ns := range t.Namespaces {
			if !dns1123Label.MatchString(ns) {
				return fmt.Errorf("%s.Namespaces[%d] %q: must be a DNS-1123 label", f, j, ns)
			}
			if strings.HasPrefix(ns, "kube-") || ns == "default" {
				return fmt.Errorf("%s.Namespaces[%d] %q: system namespaces cannot be team namespaces; choose another name", f, j, ns)
			}
			if other, ok := owners[ns]; ok {
				return fmt.Errorf("%s.Namespaces[%d] %q: already owned by team %q; a namespace has one owner", f, j, ns, other)
			}
			owners[ns] = t.Name
		}
	}
	seen := map[string]bool{}
	for i, s := range a.Services {
		f := fmt.Sprintf("Services[%d]", i)
		if !dns1123Label.MatchString(s.Name) {
			return fmt.Errorf("%s.Name %q: must be a DNS-1123 label", f, s.Name)
		}
		if _, ok := owners[s.Namespace]; !ok {
			return fmt.Errorf("%s.Namespace %q: not a team namespace; add it to a team's Namespaces (known: %s)", f, s.Namespace, strings.Join(slices.Sorted(maps.Keys(owners)), ", "))
		}
		key := s.Namespace + "/" + s.Name
		if seen[key] {
			return fmt.Errorf("%s: service %q declared twice in namespace %q", f, s.Name, s.Namespace)
		}
		seen[key] = true
		wildcards := strings.TrimSpace(s.WildcardReason) != ""
		for j, r := range s.Rules {
			if err := r.validate(fmt.Sprintf("%s.Rules[%d]", f, j), wildcards); err != nil {
				return err
			}
		}
		for j, r := range s.ClusterRules {
			if err := r.validate(fmt.Sprintf("%s.ClusterRules[%d]", f, j), wildcards); err != nil {
				return err
			}
		}
	}
	if err := a.validateAdmission(); err != nil {
		return err
	}
	if err := a.validateImageTrust(); err != nil {
		return err
	}
	if err := a.validateAPIAccess(); err != nil {
		return err
	}
	if err := a.validateSecrets(); err != nil {
		return err
	}
	if err := a.validateNodeChecks(); err != nil {
		return err
	}
	if v := a.PodSecurityVersion; v != "" && v != "latest" && !regexp.MustCompile(`^v1\.[0-9]+$`).MatchString(v) {
		return fmt.Errorf("PodSecurityVersion %q: use \"latest\" or a Kubernetes minor version like \"v1.37\"", v)
	}
	return nil
}

func (r Rule) validate(f string, wildcards bool) error {
	if len(r.Resources) == 0 || len(r.Verbs) == 0 {
		return fmt.Errorf("%s: needs Resources and Verbs", f)
	}
	for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
		for _, v := range list {
			if v == "*" && !wildcards {
				return fmt.Errorf("%s: wildcard \"*\" refused (CIS 5.1.3); list the API groups, resources and verbs the service needs, or set the service's WildcardReason", f)
			}
		}
	}
	for _, v := range r.Verbs {
		if dangerousVerbs[v] {
			return fmt.Errorf("%s: verb %q lets a service escalate its own privileges (CIS 5.1.8); remove it", f, v)
		}
		if !validVerbs[v] && !(v == "*" && wildcards) {
			return fmt.Errorf("%s: unknown verb %q; use get, list, watch, create, update, patch, delete or deletecollection", f, v)
		}
	}
	for _, res := range r.Resources {
		if res == "nodes/proxy" {
			return fmt.Errorf("%s: nodes/proxy bypasses admission and audit (CIS 5.1.10 area); remove it", f)
		}
	}
	return nil
}

func (a *Args) podSecurityVersion() string {
	if a.PodSecurityVersion == "" {
		return "latest"
	}
	return a.PodSecurityVersion
}
