package hardenedcluster

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/internal/field"
)

// AdmissionArgs configure the admission baseline: Pod Security Standards controls and the
// platform's own rules, on Pods and on every workload controller, so a bad Deployment is refused
// at apply time.
type AdmissionArgs struct {
	// Engine is "vap" (default: ValidatingAdmissionPolicies, CEL evaluated in-process by the API
	// server, no extra component to run) or "gatekeeper" (the same rules as Gatekeeper
	// ConstraintTemplates and constraints, Gatekeeper installed from its official chart: audit of
	// existing objects and violation reports).
	Engine AdmissionEngine `json:"engine,omitempty"`
	// Gatekeeper configures the Gatekeeper installation when Engine is "gatekeeper".
	Gatekeeper GatekeeperArgs `json:"gatekeeper,omitempty"`
	// Mode is "enforce" (default: deny) or "audit" (warn the client and record in the audit log).
	Mode AdmissionMode `json:"mode,omitempty"`
	// Disabled lists policies switched off by name (see PolicyNames). An unknown name is an error.
	Disabled []string `json:"disabled,omitempty"`
	// AllowedRegistries are the registries (or repositories in one) workloads may use:
	// "registry.example.com" admits registry.example.com/<anything>, "registry.example.com/team"
	// that repository and those below it; an entry matches at a path boundary only, so
	// registry.example.com.evil.io is never admitted. Images are judged as written: a Docker Hub
	// short name ("nginx", "library/nginx") names no registry and is refused; write
	// docker.io/library/nginx and allow "docker.io/library". Empty: the registry policy is not
	// installed (kplane cannot guess your registries).
	AllowedRegistries []string `json:"allowedRegistries,omitempty"`
	// AllowImageTags lets images be referenced by tag. Default false: images are pinned by
	// digest (image@sha256:...), so what was scanned and signed is what runs.
	AllowImageTags bool `json:"allowImageTags,omitempty"`
	// ExemptNamespaces are added to the always-exempt kube-system, kube-public and
	// kube-node-lease (node agents, the platform's own controllers). Keep this list short.
	ExemptNamespaces []string `json:"exemptNamespaces,omitempty"`
	// PlatformNamespaces are where the platform's own components run (the composed platform
	// fills them from the components it installs): workloads may run there and meet the whole
	// baseline, unless Exempt says why one cannot.
	PlatformNamespaces []PlatformNamespace `json:"platformNamespaces,omitempty"`
	// Exceptions exclude one workload (or a whole namespace) from one policy, with a reason, an
	// owner, a ticket and an expiry date at most MaxExceptionDays ahead. An expired exception
	// stops applying on its own: the exception-expiry CronJob (ExpiryImage) removes it from the
	// cluster's policies the day after it expires, the next up leaves it out, and the policy
	// pack fails the preview (mandatory) until it is removed from the arguments.
	Exceptions []Exception `json:"exceptions,omitempty"`
	// MaxExceptionDays caps how far ahead an exception may expire (default 90 days).
	MaxExceptionDays int `json:"maxExceptionDays,omitempty"`
	// ExpiryImage is kplane-admission by digest: the daily CronJob that removes expired
	// exceptions from the cluster's policies. Required when there are exceptions.
	ExpiryImage string `json:"expiryImage,omitempty"`
}

// PlatformNamespace is a namespace of one of the platform's components.
type PlatformNamespace struct {
	Name string `json:"name"`
	// Component that runs there (mesh, gateway, backup, identity ...).
	Component string `json:"component"`
	// Exempt, when set, is why its workloads cannot meet the baseline: the namespace is left
	// out of it, and the reason is in the stack's outputs for auditors.
	Exempt string `json:"exempt,omitempty"`
}

// Exemption is a namespace left out of the admission baseline, and why.
type Exemption struct {
	Namespace string `json:"namespace"`
	Reason    string `json:"reason"`
}

// alwaysExempt namespaces hold the control plane's own components.
var alwaysExempt = []string{"kube-system", "kube-public", "kube-node-lease"}

// PolicyNames lists every policy the baseline can install (for Disabled and Exceptions).
func PolicyNames() []string { return rules.Names() }

// policies returns the policies to install for these arguments: every rule whose parameters
// the arguments give (team namespaces, registries; the digest rule unless tags are allowed),
// minus Disabled, sorted by name.
func (a *Args) policies() []rules.Policy {
	var out []rules.Policy
	for _, r := range rules.All() {
		p := rules.Policy{Rule: r}
		switch r.Name {
		case rules.AllowedNamespaces:
			p.Values = map[string][]string{"namespaces": a.workloadNamespaces()}
			if len(p.Values["namespaces"]) == 0 {
				continue
			}
		case rules.AllowedRegistries:
			if len(a.Admission.AllowedRegistries) == 0 {
				continue
			}
			p.Values = map[string][]string{"registries": RegistryPrefixes(a.Admission.AllowedRegistries)}
		case rules.ImageDigest:
			if a.Admission.AllowImageTags {
				continue
			}
		}
		if !slices.Contains(a.Admission.Disabled, r.Name) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (a *Args) teamNamespaces() []string {
	var ns []string
	for _, t := range a.Teams {
		ns = append(ns, t.Namespaces...)
	}
	sort.Strings(ns)
	return ns
}

// workloadNamespaces are where workloads may run: the teams' namespaces, and kplane's own
// namespaces for the Vault jobs and the exception expiry (which meet the whole baseline).
func (a *Args) workloadNamespaces() []string {
	ns := a.teamNamespaces()
	for _, p := range a.Admission.PlatformNamespaces {
		if p.Exempt == "" && len(ns) > 0 {
			ns = append(ns, p.Name)
		}
	}
	if a.Secrets.Bootstrap != nil && len(ns) > 0 {
		ns = append(ns, SecretsNamespace)
	}
	if len(a.Admission.Exceptions) > 0 && len(ns) > 0 {
		ns = append(ns, ExceptionExpiryNamespace)
	}
	sort.Strings(ns)
	return ns
}

// Exemptions are the namespaces left out of the baseline, each with its reason: the control
// plane's, those the arguments exempt, kplane's node checks (they read the host), the
// operators kplane installs from upstream charts (Gatekeeper, External Secrets), whose images
// the charts reference by tag (pin their digests through the charts' Values to hold them to the
// baseline too), and the platform namespaces whose components cannot meet it.
func (a *Args) Exemptions() []Exemption {
	var out []Exemption
	add := func(ns, reason string) {
		if !slices.ContainsFunc(out, func(e Exemption) bool { return e.Namespace == ns }) {
			out = append(out, Exemption{Namespace: ns, Reason: reason})
		}
	}
	for _, ns := range alwaysExempt {
		add(ns, "the control plane's and node agents' own namespace")
	}
	for _, ns := range a.Admission.ExemptNamespaces {
		add(ns, "exempted by the environment (admission.exemptNamespaces)")
	}
	for _, p := range a.Admission.PlatformNamespaces {
		if p.Exempt != "" {
			add(p.Name, p.Component+": "+p.Exempt)
		}
	}
	if a.NodeChecks.Image != "" {
		add(NodeCheckNamespace, "node checks: read the host's files through a read-only hostPath")
	}
	if a.Admission.Engine == "gatekeeper" && !a.Admission.Gatekeeper.External {
		add(a.Admission.Gatekeeper.namespace(), "Gatekeeper: the admission engine may not judge itself (its chart's images are by tag)")
	}
	if len(a.VaultPolicies()) > 0 && !a.Secrets.Operator.External {
		add(ExternalSecretsNamespace, "External Secrets operator: its chart's images are by tag")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out
}

func (a *Args) exemptNamespaces() []string {
	var ns []string
	for _, e := range a.Exemptions() {
		ns = append(ns, e.Namespace)
	}
	return ns
}

// AdmissionEngine is how the admission rules are enforced.
type AdmissionEngine string

// The engines: ValidatingAdmissionPolicies in the API server, or Gatekeeper.
const (
	EngineVAP        AdmissionEngine = "vap"
	EngineGatekeeper AdmissionEngine = "gatekeeper"
)

// AdmissionMode is what a violation does.
type AdmissionMode string

// The modes: deny, or warn the client and record in the audit log.
const (
	ModeEnforce AdmissionMode = "enforce"
	ModeAudit   AdmissionMode = "audit"
)

func (a *Args) validateAdmission() field.ErrorList {
	ad := a.Admission
	p := field.Root().Child("admission")
	var errs field.ErrorList
	errs.Add(field.Enum(p.Child("mode"), ad.Mode, "", ModeEnforce, ModeAudit))
	errs.Add(field.Enum(p.Child("engine"), ad.Engine, "", EngineVAP, EngineGatekeeper))
	if ad.Engine == EngineGatekeeper {
		if !dns1123Label.MatchString(ad.Gatekeeper.namespace()) {
			errs.Add(field.Invalid(p.Child("gatekeeper", "namespace"), ad.Gatekeeper.Namespace, "must be a DNS-1123 label"))
		}
		if !ad.Gatekeeper.External {
			errs.Merge(p.Child("gatekeeper", "chart"), ad.Gatekeeper.Chart.Or(GatekeeperChart).Validate())
		}
		if img := ad.Gatekeeper.Image; img != "" && !addon.Pinned(img) {
			errs.Add(field.Invalid(p.Child("gatekeeper", "image"), img, "pin the Gatekeeper manager by digest (<registry>/gatekeeper@sha256:...)"))
		}
	}
	known := "known: " + strings.Join(PolicyNames(), ", ")
	for i, d := range ad.Disabled {
		if !slices.Contains(PolicyNames(), d) {
			errs.Add(field.Invalid(p.Child("disabled").Index(i), d, "no such policy; "+known))
		}
	}
	for i, r := range ad.AllowedRegistries {
		host, _, _ := strings.Cut(r, "/")
		if r == "" || strings.ContainsAny(r, "'\"\\ @") || !(strings.ContainsAny(host, ".:") || host == "localhost") {
			errs.Add(field.Invalid(p.Child("allowedRegistries").Index(i), r, `give a registry host, optionally with a repository, like "registry.example.com" or "registry.example.com/team" (Docker Hub is "docker.io/library")`))
		}
	}
	for i, ns := range ad.ExemptNamespaces {
		if !dns1123Label.MatchString(ns) {
			errs.Add(field.Invalid(p.Child("exemptNamespaces").Index(i), ns, "must be a DNS-1123 label"))
		}
	}
	for i, ns := range ad.PlatformNamespaces {
		if !dns1123Label.MatchString(ns.Name) {
			errs.Add(field.Invalid(p.Child("platformNamespaces").Index(i).Child("name"), ns.Name, "must be a DNS-1123 label"))
		}
		if ns.Component == "" {
			errs.Add(field.Required(p.Child("platformNamespaces").Index(i).Child("component"), "the component that runs there"))
		}
	}
	for i, e := range ad.Exceptions {
		errs.Add(e.validate(p.Child("exceptions").Index(i), ad.maxExceptionDays())...)
	}
	if len(ad.Exceptions) > 0 && !addon.Pinned(ad.ExpiryImage) {
		errs.Add(field.Invalid(p.Child("expiryImage"), ad.ExpiryImage, "exceptions need the expiry CronJob (kplane-admission, pinned by digest) so they end on their own"))
	}
	if ad.MaxExceptionDays < 0 {
		errs.Addf(p.Child("maxExceptionDays"), ad.MaxExceptionDays, "a number of days, or 0 for the default %d", DefaultMaxExceptionDays)
	}
	return errs
}

// validate checks one exception; maxDays caps how far ahead it may expire.
func (e Exception) validate(p *field.Path, maxDays int) field.ErrorList {
	var errs field.ErrorList
	if !slices.Contains(PolicyNames(), e.Policy) {
		errs.Add(field.Invalid(p.Child("policy"), e.Policy, "no such policy; known: "+strings.Join(PolicyNames(), ", ")))
	}
	if !dns1123Label.MatchString(e.Namespace) {
		errs.Add(field.Invalid(p.Child("namespace"), e.Namespace, "required, a DNS-1123 label"))
	}
	prefix, wildcard := strings.CutSuffix(e.Workload, "*")
	if e.Workload != "" && !(regexpWorkload.MatchString(e.Workload) || (wildcard && workloadPrefix.MatchString(prefix))) {
		errs.Add(field.Invalid(p.Child("workload"), e.Workload, "a workload's whole name (lowercase letters, digits, '-', '.'), or a prefix ending in '*'"))
	}
	for _, r := range []struct{ key, value, why string }{
		{"reason", e.Reason, "say why the workload needs the exception (auditors read it)"},
		{"owner", e.Owner, "the team or person who answers for the exception"},
		{"ticket", e.Ticket, "the change or risk-acceptance record that approved the exception"},
	} {
		if strings.TrimSpace(r.value) == "" {
			errs.Add(field.Required(p.Child(r.key), r.why))
		}
	}
	if e.Expires == "" {
		return append(errs, field.Required(p.Child("expires"), "an exception without an end date is a permanent hole (use YYYY-MM-DD)"))
	}
	until, err := time.Parse("2006-01-02", e.Expires)
	if err != nil {
		return append(errs, field.Invalid(p.Child("expires"), e.Expires, "use a date like 2026-12-31"))
	}
	if limit := today().AddDate(0, 0, maxDays); until.After(limit) {
		errs.Addf(p.Child("expires"), e.Expires, "more than %d days ahead (the latest is %s); renew the exception when it ends, or raise admission.maxExceptionDays",
			maxDays, limit.Format("2006-01-02"))
	}
	return errs
}

// RegistryPrefixes are the image prefixes an allowed registry entry admits, each ending at a
// boundary: "/" after a host or repository, and ":" or "@" after a repository named whole
// (registry.example.com/team/app:1). A plain string prefix would admit
// registry.example.com.evil.io for registry.example.com.
func RegistryPrefixes(registries []string) []string {
	var out []string
	for _, r := range registries {
		if strings.HasSuffix(r, "/") {
			out = append(out, r)
			continue
		}
		out = append(out, r+"/")
		if strings.Contains(r, "/") {
			out = append(out, r+":", r+"@")
		}
	}
	return out
}

// CELPolicy is one admission policy rendered for another CEL evaluator (kplane's policy packs
// check the same rules at preview time): the rule, the variables in order, then its
// validations, each an expression that is true when allowed and a message expression.
type CELPolicy struct {
	rules.Rule
	Variables   [][2]string
	Validations [][2]string // {expression, message expression}
}

// CELPolicies renders the policies these arguments install, as the API server evaluates them.
func (a *Args) CELPolicies() []CELPolicy {
	var out []CELPolicy
	for _, p := range a.policies() {
		out = append(out, CELPolicy{Rule: p.Rule, Variables: rules.Variables, Validations: p.CEL(rules.Literals)})
	}
	return out
}

// ExemptNamespaces are the namespaces the baseline leaves out for these arguments.
func (a *Args) ExemptNamespaces() []string { return a.exemptNamespaces() }

// ExemptNamespacesFor are the namespaces policy leaves out: the exempt ones, and for a
// restricted-only policy the namespaces of teams at PodSecurity "baseline".
func (a *Args) ExemptNamespacesFor(policy string) []string {
	ns := a.exemptNamespaces()
	if r, ok := rules.ByName(policy); ok && r.RestrictedOnly {
		for _, t := range a.Teams {
			if t.PodSecurity == "baseline" {
				ns = append(ns, t.Namespaces...)
			}
		}
		sort.Strings(ns)
	}
	return ns
}
