package hardenedcluster

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// AdmissionArgs configure the admission baseline: Pod Security Standards controls and the
// platform's own rules, on Pods and on every workload controller, so a bad Deployment is refused
// at apply time.
type AdmissionArgs struct {
	// Engine is "vap" (default: ValidatingAdmissionPolicies, CEL evaluated in-process by the API
	// server, no extra component to run) or "gatekeeper" (the same rules as Gatekeeper
	// ConstraintTemplates and constraints, Gatekeeper installed from its official chart: audit of
	// existing objects and violation reports).
	Engine string `json:"engine,omitempty"`
	// Gatekeeper configures the Gatekeeper installation when Engine is "gatekeeper".
	Gatekeeper GatekeeperArgs `json:"gatekeeper,omitempty"`
	// Mode is "enforce" (default: deny) or "audit" (warn the client and record in the audit log).
	Mode string `json:"mode,omitempty"`
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

// alwaysExempt namespaces hold the control plane's own components.
var alwaysExempt = []string{"kube-system", "kube-public", "kube-node-lease"}

// policyDef is one admission policy: CEL validations over the pod spec of any workload.
type policyDef struct {
	Name        string
	Description string
	Controls    []string // CIS Kubernetes Benchmark 1.12, KISA cloud guide, Pod Security Standards
	Validations []celRule
	// Params are the policy's list parameters (from the arguments), written {{name}} in rules
	// and messages: literals in a ValidatingAdmissionPolicy, constraint parameters in Gatekeeper.
	Params map[string][]string
}

// celRule denies when Bad holds; Bad is over one container (c) when PerContainer is set,
// otherwise over the pod spec. Message names the offending field and says the fix.
type celRule struct {
	PerContainer bool
	Bad          string
	Message      string
	Subject      string // optional CEL string naming what is wrong, for pod-level rules
}

// The CEL variables every policy shares: the pod spec of a Pod, a CronJob or any controller's
// pod template, its containers (init containers included), the pod-level securityContext and the
// ephemeral containers added to a running pod (kubectl debug), whether it is a Windows pod, and
// the pod's annotations (the
// deprecated AppArmor annotation is still honoured by the kubelet).
var celVariables = [][2]string{
	{"spec", "object.kind == 'Pod' ? object.spec : (object.kind == 'CronJob' ? object.spec.jobTemplate.spec.template.spec : object.spec.template.spec)"},
	{"containers", "variables.spec.containers + (has(variables.spec.initContainers) ? variables.spec.initContainers : [])"},
	{"podsc", "has(variables.spec.securityContext) ? variables.spec.securityContext : {}"},
	{"ephemeral", "has(variables.spec.ephemeralContainers) ? variables.spec.ephemeralContainers : []"},
	// Pod Security exempts Windows pods from the Linux-only fields (API validation forbids them there).
	{"windows", "has(variables.spec.os) && variables.spec.os.name == 'windows'"},
	{"annotations", "object.kind == 'Pod' ? (has(object.metadata.annotations) ? object.metadata.annotations : {}) : " +
		"(object.kind == 'CronJob' ? (has(object.spec.jobTemplate.spec.template.metadata) && has(object.spec.jobTemplate.spec.template.metadata.annotations) ? object.spec.jobTemplate.spec.template.metadata.annotations : {}) : " +
		"(has(object.spec.template.metadata) && has(object.spec.template.metadata.annotations) ? object.spec.template.metadata.annotations : {}))"},
}

// linuxOnly applies a rule to Linux pods only, as Pod Security restricted does for
// allowPrivilegeEscalation, capabilities and seccomp (Windows has none of them).
func linuxOnly(bad string) string { return "!variables.windows && (" + bad + ")" }

func scFalse(field string) string { // container securityContext field unset or false
	return fmt.Sprintf("(!has(c.securityContext) || !has(c.securityContext.%[1]s) || !c.securityContext.%[1]s)", field)
}

// basePolicies is the catalog, in the order they are reported.
var basePolicies = []policyDef{
	{Name: "kplane-no-privileged", Description: "containers may not run privileged",
		Controls: []string{"CIS 5.2.2", "KISA Master-12", "PSS baseline"},
		Validations: []celRule{{PerContainer: true, Bad: "!" + scFalse("privileged"),
			Message: "securityContext.privileged must be false (CIS 5.2.2); remove it, or add a kplane exception for this workload"}}},
	{Name: "kplane-host-namespaces", Description: "pods may not share the host's network, PID or IPC namespaces",
		Controls: []string{"CIS 5.2.3", "CIS 5.2.4", "CIS 5.2.5", "KISA Master-13", "PSS baseline"},
		Validations: []celRule{
			{Bad: "has(variables.spec.hostNetwork) && variables.spec.hostNetwork", Message: "spec.hostNetwork must be unset or false (CIS 5.2.5); use a Service to expose ports"},
			{Bad: "has(variables.spec.hostPID) && variables.spec.hostPID", Message: "spec.hostPID must be unset or false (CIS 5.2.3)"},
			{Bad: "has(variables.spec.hostIPC) && variables.spec.hostIPC", Message: "spec.hostIPC must be unset or false (CIS 5.2.4)"},
		}},
	{Name: "kplane-host-path", Description: "pods may not mount host paths",
		Controls: []string{"CIS 5.2.11", "KISA Master-13", "PSS baseline"},
		Validations: []celRule{{Bad: "has(variables.spec.volumes) && variables.spec.volumes.exists(v, has(v.hostPath))",
			Message: "spec.volumes: hostPath volumes are not allowed (CIS 5.2.11); use a PersistentVolumeClaim, emptyDir, configMap or secret"}}},
	{Name: "kplane-host-ports", Description: "containers may not bind host ports",
		Controls: []string{"CIS 5.2.12", "PSS baseline"},
		Validations: []celRule{{PerContainer: true, Bad: "has(c.ports) && c.ports.exists(p, has(p.hostPort) && p.hostPort != 0)",
			Message: "ports[].hostPort must be unset or 0 (CIS 5.2.12); expose the port through a Service"}}},
	{Name: "kplane-privilege-escalation", Description: "containers must set allowPrivilegeEscalation: false",
		Controls: []string{"CIS 5.2.6", "KISA Master-12", "PSS restricted"},
		Validations: []celRule{{PerContainer: true, Bad: linuxOnly("!has(c.securityContext) || !has(c.securityContext.allowPrivilegeEscalation) || c.securityContext.allowPrivilegeEscalation"),
			Message: "securityContext.allowPrivilegeEscalation must be set to false (CIS 5.2.6)"}}},
	{Name: "kplane-run-as-non-root", Description: "containers must run as a non-root user, declared explicitly",
		Controls: []string{"CIS 5.2.7", "KISA Master-12", "PSS restricted"},
		Validations: []celRule{
			// Container level wins; unset at both levels is a violation (the image's USER cannot be
			// seen at admission, so it must be declared and the kubelet then verifies it).
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.runAsNonRoot) ? !c.securityContext.runAsNonRoot : !(has(variables.podsc.runAsNonRoot) && variables.podsc.runAsNonRoot)",
				Message: "securityContext.runAsNonRoot must be true, on the container or the pod (CIS 5.2.7); set it and run as a non-zero runAsUser"},
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.runAsUser) ? c.securityContext.runAsUser == 0 : (has(variables.podsc.runAsUser) && variables.podsc.runAsUser == 0)",
				Message: "securityContext.runAsUser must not be 0 (root) (CIS 5.2.7); use a non-zero UID"},
		}},
	{Name: "kplane-read-only-root", Description: "containers must have a read-only root filesystem",
		Controls: []string{"CIS 5.6.3", "KISA Master-12"},
		Validations: []celRule{
			{PerContainer: true, Bad: linuxOnly("!has(c.securityContext) || !has(c.securityContext.readOnlyRootFilesystem) || !c.securityContext.readOnlyRootFilesystem"),
				Message: "securityContext.readOnlyRootFilesystem must be true; mount an emptyDir where the program writes"},
			// Windows pods cannot have one (API validation forbids the field there): refused, saying so.
			{Bad: "variables.windows", Message: "Windows pods cannot have a read-only root filesystem, which kplane requires; run the workload in an exempt namespace or give it a kplane-read-only-root exception"},
		}},
	{Name: "kplane-capabilities", Description: "containers drop ALL capabilities and add at most NET_BIND_SERVICE",
		Controls: []string{"CIS 5.2.8", "CIS 5.2.9", "PSS restricted"},
		Validations: []celRule{
			{PerContainer: true, Bad: linuxOnly("!has(c.securityContext) || !has(c.securityContext.capabilities) || !has(c.securityContext.capabilities.drop) || !c.securityContext.capabilities.drop.exists(x, x == 'ALL')"),
				Message: "securityContext.capabilities.drop must include ALL (CIS 5.2.8/5.2.9)"},
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.capabilities) && has(c.securityContext.capabilities.add) && c.securityContext.capabilities.add.exists(x, x != 'NET_BIND_SERVICE')",
				Message: "securityContext.capabilities.add may only contain NET_BIND_SERVICE (CIS 5.2.9); remove the others"},
		}},
	{Name: "kplane-seccomp", Description: "a RuntimeDefault or Localhost seccomp profile is set, never Unconfined",
		Controls: []string{"CIS 5.6.2", "PSS restricted"},
		Validations: []celRule{{PerContainer: true,
			Bad:     linuxOnly("has(c.securityContext) && has(c.securityContext.seccompProfile) ? !(c.securityContext.seccompProfile.type in ['RuntimeDefault', 'Localhost']) : !(has(variables.podsc.seccompProfile) && variables.podsc.seccompProfile.type in ['RuntimeDefault', 'Localhost'])"),
			Message: "securityContext.seccompProfile.type must be RuntimeDefault or Localhost, on the container or the pod (CIS 5.6.2)"}}},
}

// The rest of the Pod Security Standards (baseline and restricted, Kubernetes 1.37), so the
// baseline is complete even where Pod Security Admission is off or set to a lower level.
var pssPolicies = []policyDef{
	{Name: "kplane-apparmor", Description: "AppArmor profiles are RuntimeDefault or Localhost, never Unconfined",
		Controls: []string{"PSS baseline", "KISA Master-12"},
		Validations: []celRule{
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.appArmorProfile) && !(c.securityContext.appArmorProfile.type in ['RuntimeDefault', 'Localhost'])",
				Message: "securityContext.appArmorProfile.type must be RuntimeDefault or Localhost; remove Unconfined"},
			{Bad: "has(variables.podsc.appArmorProfile) && !(variables.podsc.appArmorProfile.type in ['RuntimeDefault', 'Localhost'])",
				Message: "spec.securityContext.appArmorProfile.type must be RuntimeDefault or Localhost; remove Unconfined"},
			// The annotation form (deprecated, still applied by the kubelet): the API server copies
			// it into the field for bare Pods only, so a controller's template must be judged here.
			{Bad: "variables.annotations.exists(k, " + appArmorAnnotationBad + ")",
				Subject: "'annotation ' + variables.annotations.filter(k, " + appArmorAnnotationBad + ")[0]",
				Message: "AppArmor annotations (container.apparmor.security.beta.kubernetes.io/*) must be runtime/default or localhost/<profile>; remove unconfined, or use securityContext.appArmorProfile"},
		}},
	{Name: "kplane-selinux", Description: "SELinux options keep a container type and set no user or role",
		Controls: []string{"PSS baseline"},
		Validations: []celRule{
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.seLinuxOptions) && " + seLinuxBad("c.securityContext.seLinuxOptions"),
				Message: "securityContext.seLinuxOptions: type must be unset or " + strings.Join(seLinuxTypes, ", ") + ", and user and role unset"},
			{Bad: "has(variables.podsc.seLinuxOptions) && " + seLinuxBad("variables.podsc.seLinuxOptions"),
				Message: "spec.securityContext.seLinuxOptions: type must be unset or " + strings.Join(seLinuxTypes, ", ") + ", and user and role unset"},
		}},
	{Name: "kplane-proc-mount", Description: "containers keep the Default /proc mount",
		Controls: []string{"PSS baseline", "PSS restricted"},
		Validations: []celRule{{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.procMount) && c.securityContext.procMount != 'Default'",
			Message: "securityContext.procMount must be unset or Default; Unmasked exposes the host's /proc"}}},
	{Name: "kplane-sysctls", Description: "pods set only namespaced, safe sysctls",
		Controls: []string{"PSS baseline"},
		Validations: []celRule{{Bad: "has(variables.podsc.sysctls) && variables.podsc.sysctls.exists(s, !(s.name in " + celList(safeSysctls) + "))",
			Subject: "'sysctl ' + variables.podsc.sysctls.filter(s, !(s.name in " + celList(safeSysctls) + "))[0].name",
			Message: "spec.securityContext.sysctls may only set the safe sysctls (" + strings.Join(safeSysctls, ", ") + ")"}}},
	{Name: "kplane-host-process", Description: "no Windows HostProcess containers",
		Controls: []string{"CIS 5.2.10", "PSS baseline"},
		Validations: []celRule{
			{PerContainer: true, Bad: "has(c.securityContext) && has(c.securityContext.windowsOptions) && has(c.securityContext.windowsOptions.hostProcess) && c.securityContext.windowsOptions.hostProcess",
				Message: "securityContext.windowsOptions.hostProcess must be unset or false"},
			{Bad: "has(variables.podsc.windowsOptions) && has(variables.podsc.windowsOptions.hostProcess) && variables.podsc.windowsOptions.hostProcess",
				Message: "spec.securityContext.windowsOptions.hostProcess must be unset or false"},
		}},
	{Name: "kplane-probe-host", Description: "probes and lifecycle hooks may not target another host",
		Controls: []string{"PSS baseline"},
		Validations: []celRule{{PerContainer: true, Bad: handlerHostSet(),
			Message: "probes and lifecycle handlers must leave httpGet.host and tcpSocket.host unset (the pod's own IP)"}}},
	{Name: "kplane-volume-types", Description: "pods use only the restricted volume types",
		Controls: []string{"PSS restricted", "CIS 5.2.11"},
		Validations: []celRule{{Bad: "has(variables.spec.volumes) && variables.spec.volumes.exists(v, " + badVolume + ")",
			Subject: "'volume ' + variables.spec.volumes.filter(v, " + badVolume + ")[0].name",
			Message: "only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret volumes are allowed; use a PersistentVolumeClaim for storage"}}},
}

// appArmorAnnotationBad: annotation key k is an AppArmor profile other than the default or a
// local one (Pod Security baseline allows those and an empty value).
const appArmorAnnotationBad = "k.startsWith('container.apparmor.security.beta.kubernetes.io/') && !(variables.annotations[k] in ['', 'runtime/default'] || variables.annotations[k].startsWith('localhost/'))"

// seLinuxTypes are the SELinux types Pod Security baseline allows (1.31+).
var seLinuxTypes = []string{"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

// safeSysctls are the sysctls Pod Security baseline allows (Kubernetes 1.37).
var safeSysctls = []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports",
	"net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range", "net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_notsent_lowat", "net.ipv4.tcp_rmem", "net.ipv4.tcp_slow_start_after_idle",
	"net.ipv4.tcp_syncookies", "net.ipv4.tcp_wmem"}

// badVolume: a volume of a type restricted pods may not use (hostPath has its own policy).
const badVolume = "!(has(v.hostPath) || has(v.configMap) || has(v.csi) || has(v.downwardAPI) || has(v.emptyDir) || has(v.ephemeral) || has(v.image) || has(v.persistentVolumeClaim) || has(v.projected) || has(v.secret))"

func seLinuxBad(o string) string {
	return fmt.Sprintf("((has(%[1]s.type) && !(%[1]s.type in %[2]s)) || has(%[1]s.user) || has(%[1]s.role))", o, celList(append([]string{""}, seLinuxTypes...)))
}

// handlerHostSet is true when any probe or lifecycle handler of container c names a host.
func handlerHostSet() string {
	var terms []string
	for _, h := range []string{"c.livenessProbe", "c.readinessProbe", "c.startupProbe", "c.lifecycle.postStart", "c.lifecycle.preStop"} {
		guard := "has(" + h + ")"
		if strings.HasPrefix(h, "c.lifecycle.") {
			guard = "has(c.lifecycle) && " + guard
		}
		for _, action := range []string{"httpGet", "tcpSocket"} {
			terms = append(terms, fmt.Sprintf("(%[1]s && has(%[2]s.%[3]s) && has(%[2]s.%[3]s.host) && %[2]s.%[3]s.host != '')", guard, h, action))
		}
	}
	return strings.Join(terms, " || ")
}

// catalog is every policy that does not depend on the arguments.
func catalog() []policyDef { return append(append([]policyDef{}, basePolicies...), pssPolicies...) }

// PolicyNames lists every policy the baseline can install (for Disabled and Exceptions).
func PolicyNames() []string {
	names := []string{"kplane-allowed-namespaces", "kplane-allowed-registries", "kplane-image-digest"}
	for _, p := range catalog() {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}

// policies returns the policies to install for these arguments: the catalog, plus the rules
// computed from the teams (allowed namespaces) and the image arguments, minus Disabled.
func (a *Args) policies() []policyDef {
	out := catalog()
	if ns := a.workloadNamespaces(); len(ns) > 0 {
		out = append(out, policyDef{Name: "kplane-allowed-namespaces", Description: "workloads run only in team namespaces",
			Controls: []string{"CIS 5.6.1", "CIS 5.6.4", "ISMS-P 2.6.1"},
			Params:   map[string][]string{"namespaces": ns},
			Validations: []celRule{{Bad: "!(request.namespace in {{namespaces}})", Subject: "'namespace ' + request.namespace",
				Message: "not a team namespace (CIS 5.6.4); deploy into one of {{namespaces}}, or add the namespace to a team"}}})
	}
	if len(a.Admission.AllowedRegistries) > 0 {
		out = append(out, policyDef{Name: "kplane-allowed-registries", Description: "images come from the allowed registries",
			Controls: []string{"CIS 5.5.1", "KISA Master-17"},
			Params:   map[string][]string{"registries": RegistryPrefixes(a.Admission.AllowedRegistries)},
			Validations: []celRule{{PerContainer: true, Bad: "!{{registries}}.exists(r, c.image.startsWith(r))",
				Message: "image is not from an allowed registry ({{registries}}); push it there and reference it from there"}}})
	}
	if !a.Admission.AllowImageTags {
		out = append(out, policyDef{Name: "kplane-image-digest", Description: "images are pinned by digest",
			Controls: []string{"CIS 5.5.1", "KISA Master-17"},
			Validations: []celRule{{PerContainer: true, Bad: "!c.image.contains('@sha256:')",
				Message: "image must be pinned by digest (name@sha256:...), so what was scanned and signed is what runs"}}})
	}
	disabled := map[string]bool{}
	for _, d := range a.Admission.Disabled {
		disabled[d] = true
	}
	kept := out[:0]
	for _, p := range out {
		if !disabled[p.Name] {
			kept = append(kept, p)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Name < kept[j].Name })
	return kept
}

// dialect is how an engine spells a policy's parameters: as literals (ValidatingAdmissionPolicy,
// rendered per cluster) or as the constraint's parameters (Gatekeeper: one template, arguments
// in the constraint).
type dialect struct {
	list func(param string, values []string) string // a CEL list of strings
	text func(param string, values []string) string // a CEL string listing them for messages
}

var (
	literals = dialect{
		list: func(_ string, values []string) string { return celList(values) },
		text: func(_ string, values []string) string { return celString(strings.Join(values, ", ")) },
	}
	constraintParams = dialect{
		list: func(param string, _ []string) string { return "variables.params." + param },
		text: func(param string, _ []string) string { return "variables.params." + param + ".join(', ')" },
	}
)

var paramToken = regexp.MustCompile(`\{\{([a-z]+)\}\}`)

// expr replaces the {{param}} tokens of a CEL expression with the parameter's list.
func (p policyDef) expr(s string, d dialect) string {
	return paramToken.ReplaceAllStringFunc(s, func(tok string) string {
		name := paramToken.FindStringSubmatch(tok)[1]
		return d.list(name, p.Params[name])
	})
}

// message turns a message with {{param}} tokens into a CEL string expression.
func (p policyDef) message(m string, d dialect) string {
	var parts []string
	for {
		loc := paramToken.FindStringSubmatchIndex(m)
		if loc == nil {
			break
		}
		name := m[loc[2]:loc[3]]
		parts = append(parts, celString(m[:loc[0]]), d.text(name, p.Params[name]))
		m = m[loc[1]:]
	}
	return strings.Join(append(parts, celString(m)), " + ")
}

// celExpression renders a rule of p as a CEL validation expression (true = allowed) and a
// message expression that names the policy and the offending container.
func (p policyDef) celExpression(r celRule, d dialect) (expr, message string) {
	bad, msg := p.expr(r.Bad, d), p.message(r.Message, d)
	if !r.PerContainer {
		message = msg
		if r.Subject != "" {
			message = p.expr(r.Subject, d) + " + ': ' + " + message
		}
		return "!(" + bad + ")", celString(p.Name+": ") + " + " + message
	}
	// Ephemeral containers (kubectl debug) are a list of their own type: checked separately.
	in := func(list string) string { return "variables." + list + ".exists(c, " + bad + ")" }
	first := func(list string) string { return "variables." + list + ".filter(c, " + bad + ")[0].name" }
	expr = "!" + in("containers") + " && !" + in("ephemeral")
	message = celString(p.Name+": container ") + " + (" + in("containers") + " ? " + first("containers") + " : " + first("ephemeral") + ") + ': ' + " + msg
	return expr, message
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
	if a.Secrets.Bootstrap != nil && len(ns) > 0 {
		ns = append(ns, SecretsNamespace)
	}
	if len(a.Admission.Exceptions) > 0 && len(ns) > 0 {
		ns = append(ns, ExceptionExpiryNamespace)
	}
	sort.Strings(ns)
	return ns
}

// exemptNamespaces are left out of the baseline: the control plane's, those the arguments
// exempt, kplane's node checks (they read the host) and the operators kplane installs from
// upstream charts (Gatekeeper, External Secrets), whose images the charts reference by tag: pin
// their digests through the charts' Values to hold them to the baseline too.
func (a *Args) exemptNamespaces() []string {
	ns := append(append([]string{}, alwaysExempt...), a.Admission.ExemptNamespaces...)
	if a.NodeChecks.Image != "" {
		ns = append(ns, NodeCheckNamespace)
	}
	if a.Admission.Engine == "gatekeeper" && !a.Admission.Gatekeeper.External {
		ns = append(ns, a.Admission.Gatekeeper.namespace())
	}
	if len(a.VaultPolicies()) > 0 && !a.Secrets.Operator.External {
		ns = append(ns, ExternalSecretsNamespace)
	}
	sort.Strings(ns)
	return ns
}

func (a *Args) validateAdmission() error {
	ad := a.Admission
	switch ad.Mode {
	case "", "enforce", "audit":
	default:
		return fmt.Errorf("Admission.Mode %q: use \"enforce\" (default) or \"audit\"", ad.Mode)
	}
	switch ad.Engine {
	case "", "vap":
	case "gatekeeper":
		if !dns1123Label.MatchString(ad.Gatekeeper.namespace()) {
			return fmt.Errorf("Admission.Gatekeeper.Namespace %q: must be a DNS-1123 label", ad.Gatekeeper.Namespace)
		}
		if !ad.Gatekeeper.External {
			if err := ad.Gatekeeper.Chart.Or(GatekeeperChart).Validate("Admission.Gatekeeper.Chart"); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("Admission.Engine %q: use \"vap\" (default, in-process) or \"gatekeeper\"", ad.Engine)
	}
	known := map[string]bool{}
	for _, n := range PolicyNames() {
		known[n] = true
	}
	for i, d := range ad.Disabled {
		if !known[d] {
			return fmt.Errorf("Admission.Disabled[%d] %q: no such policy; known: %s", i, d, strings.Join(PolicyNames(), ", "))
		}
	}
	for i, r := range ad.AllowedRegistries {
		host, _, _ := strings.Cut(r, "/")
		if r == "" || strings.ContainsAny(r, "'\"\\ @") || !(strings.ContainsAny(host, ".:") || host == "localhost") {
			return fmt.Errorf("Admission.AllowedRegistries[%d] %q: give a registry host, optionally with a repository, like \"registry.example.com\" or \"registry.example.com/team\" (Docker Hub is \"docker.io/library\")", i, r)
		}
	}
	for i, ns := range ad.ExemptNamespaces {
		if !dns1123Label.MatchString(ns) {
			return fmt.Errorf("Admission.ExemptNamespaces[%d] %q: must be a DNS-1123 label", i, ns)
		}
	}
	for i, e := range ad.Exceptions {
		f := fmt.Sprintf("Admission.Exceptions[%d]", i)
		if !known[e.Policy] {
			return fmt.Errorf("%s.Policy %q: no such policy; known: %s", f, e.Policy, strings.Join(PolicyNames(), ", "))
		}
		if !dns1123Label.MatchString(e.Namespace) {
			return fmt.Errorf("%s.Namespace %q: required, a DNS-1123 label", f, e.Namespace)
		}
		prefix, wildcard := strings.CutSuffix(e.Workload, "*")
		if e.Workload != "" && !(regexpWorkload.MatchString(e.Workload) || (wildcard && workloadPrefix.MatchString(prefix))) {
			return fmt.Errorf("%s.Workload %q: a workload's whole name (lowercase letters, digits, '-', '.'), or a prefix ending in '*'", f, e.Workload)
		}
		if strings.TrimSpace(e.Reason) == "" {
			return fmt.Errorf("%s.Reason: required; say why the workload needs the exception (auditors read it)", f)
		}
		if strings.TrimSpace(e.Owner) == "" {
			return fmt.Errorf("%s.Owner: required; the team or person who answers for the exception", f)
		}
		if strings.TrimSpace(e.Ticket) == "" {
			return fmt.Errorf("%s.Ticket: required; the change or risk-acceptance record that approved the exception", f)
		}
		if e.Expires == "" {
			return fmt.Errorf("%s.Expires: required; an exception without an end date is a permanent hole (use YYYY-MM-DD)", f)
		}
		until, err := time.Parse("2006-01-02", e.Expires)
		if err != nil {
			return fmt.Errorf("%s.Expires %q: use a date like 2026-12-31", f, e.Expires)
		}
		if limit := today().AddDate(0, 0, ad.maxExceptionDays()); until.After(limit) {
			return fmt.Errorf("%s.Expires %q: more than %d days ahead (the latest is %s); renew the exception when it ends, or raise Admission.MaxExceptionDays",
				f, e.Expires, ad.maxExceptionDays(), limit.Format("2006-01-02"))
		}
	}
	if len(ad.Exceptions) > 0 && !strings.Contains(ad.ExpiryImage, "@sha256:") {
		return fmt.Errorf("Admission.ExpiryImage %q: exceptions need the expiry CronJob (kplane-admission, pinned by digest) so they end on their own", ad.ExpiryImage)
	}
	if ad.MaxExceptionDays < 0 {
		return fmt.Errorf("Admission.MaxExceptionDays %d: a number of days, or 0 for the default %d", ad.MaxExceptionDays, DefaultMaxExceptionDays)
	}
	return nil
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

func celString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func celList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = celString(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// CELPolicy is one admission policy rendered for another CEL evaluator (kplane's policy packs
// check the same rules at preview time): variables in order, then validations, each an
// expression that is true when allowed and a message expression.
type CELPolicy struct {
	Name, Description string
	Controls          []string
	Variables         [][2]string
	Validations       [][2]string // {expression, message expression}
}

// CELPolicies renders the policies these arguments install, as the API server evaluates them.
func (a *Args) CELPolicies() []CELPolicy {
	var out []CELPolicy
	for _, p := range a.policies() {
		cp := CELPolicy{Name: p.Name, Description: p.Description, Controls: p.Controls, Variables: celVariables}
		for _, r := range p.Validations {
			expr, msg := p.celExpression(r, literals)
			cp.Validations = append(cp.Validations, [2]string{expr, msg})
		}
		out = append(out, cp)
	}
	return out
}

// ExemptNamespaces are the namespaces the baseline leaves out for these arguments.
func (a *Args) ExemptNamespaces() []string { return a.exemptNamespaces() }

// RestrictedOnly are the policies of Pod Security's restricted level that baseline does not
// have: a team at PodSecurity "baseline" is not held to them (Pod Security Admission's baseline
// label still judges its pods; baseline allows an unmasked /proc in a user namespace).
var RestrictedOnly = []string{"kplane-capabilities", "kplane-privilege-escalation", "kplane-proc-mount", "kplane-run-as-non-root", "kplane-seccomp", "kplane-volume-types"}

// ExemptNamespacesFor are the namespaces policy leaves out: the exempt ones, and for a
// restricted-only policy the namespaces of teams at PodSecurity "baseline".
func (a *Args) ExemptNamespacesFor(policy string) []string {
	ns := a.exemptNamespaces()
	if slices.Contains(RestrictedOnly, policy) {
		for _, t := range a.Teams {
			if t.PodSecurity == "baseline" {
				ns = append(ns, t.Namespaces...)
			}
		}
		sort.Strings(ns)
	}
	return ns
}
