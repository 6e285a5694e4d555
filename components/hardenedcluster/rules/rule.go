// Package rules is the one home of kplane's admission rules. Each rule is one entry (in
// pod.go, podsecurity.go and images.go) holding its CEL, its text in English and Korean, the
// controls it implements (CIS, KISA, ISMS-P, Pod Security) and the pods it must refuse.
//
// Everything else is rendered from here: the hardened cluster's ValidatingAdmissionPolicies and
// Gatekeeper ConstraintTemplates (and the Gatekeeper library under ../gatekeeper), the policy
// pack's workload policies, the table in docs/components/hardenedcluster.md, and the admission
// tests' fixtures. Adding a rule is adding an entry; TestEveryRuleIsComplete refuses one
// without samples, without both languages or without controls.
package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Rule is one admission rule: CEL validations over the pod spec of any workload.
type Rule struct {
	Name string
	// Description says the rule in one sentence; DescriptionKo in Korean.
	Description, DescriptionKo string
	// Remediation says how to comply; RemediationKo in Korean.
	Remediation, RemediationKo string
	// Controls are the references the rule implements: "CIS 5.2.2", "KISA Master-12",
	// "ISMS-P 2.6.1", "PSS baseline".
	Controls []string
	// RestrictedOnly is set on the rules of Pod Security's restricted level that baseline does
	// not have: a team at PodSecurity "baseline" is not held to them.
	RestrictedOnly bool
	// Params are the rule's list parameters (values come from the hardened cluster's arguments),
	// written {{name}} in validations and messages.
	Params      []string
	Validations []Validation
	// Samples are pods the rule must refuse (changes to GoodPodSpec, which every rule admits).
	Samples []Sample
}

// Validation denies when Bad holds; Bad is over one container (c) when PerContainer is set,
// otherwise over the pod spec. Message names the offending field and says the fix.
type Validation struct {
	PerContainer bool
	Bad          string
	Message      string
	Subject      string // optional CEL string naming what is wrong, for pod-level rules
}

// Sample is a change to GoodPodSpec that its rule must refuse with Want in its message.
type Sample struct {
	Name string
	// Policy is the rule's name (filled in by Samples).
	Policy string
	Mutate func(spec map[string]any)
	Want   string
	// Also names a rule the change necessarily breaks too, because the API's own validation
	// demands it (a privileged container may not set allowPrivilegeEscalation: false).
	Also string
	// Annotations go on the pod (template) metadata.
	Annotations map[string]any
	// Namespace is where the sample runs when that is what is wrong ("" = a team namespace).
	Namespace string
}

// Variables are the CEL variables every rule shares: the pod spec of a Pod, a CronJob or any
// controller's pod template, its containers (init containers included), the pod-level
// securityContext, the ephemeral containers added to a running pod (kubectl debug), whether it
// is a Windows pod, and the pod's annotations (the deprecated AppArmor annotation is still
// honoured by the kubelet).
var Variables = [][2]string{
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

// All is every rule, in the order they are reported.
func All() []Rule { return slices.Concat(podRules, podSecurityRules, imageRules) }

// Names lists every rule's name, sorted.
func Names() []string {
	var names []string
	for _, r := range All() {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	return names
}

// ByName is the rule named name.
func ByName(name string) (Rule, bool) {
	i := slices.IndexFunc(All(), func(r Rule) bool { return r.Name == name })
	if i < 0 {
		return Rule{}, false
	}
	return All()[i], true
}

// RestrictedOnly names the rules a team at PodSecurity "baseline" is not held to.
func RestrictedOnly() []string {
	var names []string
	for _, r := range All() {
		if r.RestrictedOnly {
			names = append(names, r.Name)
		}
	}
	return names
}

// Samples are every rule's samples, each naming its rule.
func Samples() []Sample {
	var out []Sample
	for _, r := range All() {
		for _, s := range r.Samples {
			s.Policy = r.Name
			out = append(out, s)
		}
	}
	return out
}

// Policy is a rule with its parameters' values: what one cluster installs.
type Policy struct {
	Rule
	Values map[string][]string // per parameter (Rule.Params)
}

// Dialect is how an engine spells a policy's parameters: as literals (ValidatingAdmissionPolicy,
// rendered per cluster) or as the constraint's parameters (Gatekeeper: one template, arguments
// in the constraint).
type Dialect struct {
	list func(param string, values []string) string // a CEL list of strings
	text func(param string, values []string) string // a CEL string listing them for messages
}

var (
	// Literals writes parameters into the CEL (a ValidatingAdmissionPolicy per cluster).
	Literals = Dialect{
		list: func(_ string, values []string) string { return celList(values) },
		text: func(_ string, values []string) string { return celString(strings.Join(values, ", ")) },
	}
	// ConstraintParams reads parameters from a Gatekeeper constraint (variables.params).
	ConstraintParams = Dialect{
		list: func(param string, _ []string) string { return "variables.params." + param },
		text: func(param string, _ []string) string { return "variables.params." + param + ".join(', ')" },
	}
)

var paramToken = regexp.MustCompile(`\{\{([a-z]+)\}\}`)

// expr replaces the {{param}} tokens of a CEL expression with the parameter's list.
func (p Policy) expr(s string, d Dialect) string {
	return paramToken.ReplaceAllStringFunc(s, func(tok string) string {
		name := paramToken.FindStringSubmatch(tok)[1]
		return d.list(name, p.Values[name])
	})
}

// message turns a message with {{param}} tokens into a CEL string expression.
func (p Policy) message(m string, d Dialect) string {
	var parts []string
	for {
		loc := paramToken.FindStringSubmatchIndex(m)
		if loc == nil {
			break
		}
		name := m[loc[2]:loc[3]]
		parts = append(parts, celString(m[:loc[0]]), d.text(name, p.Values[name]))
		m = m[loc[1]:]
	}
	return strings.Join(append(parts, celString(m)), " + ")
}

// CEL renders the policy's validations in dialect d: for each, an expression that is true when
// the object is allowed and a message expression naming the policy and the offending container.
func (p Policy) CEL(d Dialect) [][2]string {
	var out [][2]string
	for _, v := range p.Validations {
		out = append(out, p.validation(v, d))
	}
	return out
}

func (p Policy) validation(v Validation, d Dialect) [2]string {
	bad, msg := p.expr(v.Bad, d), p.message(v.Message, d)
	if !v.PerContainer {
		if v.Subject != "" {
			msg = p.expr(v.Subject, d) + " + ': ' + " + msg
		}
		return [2]string{"!(" + bad + ")", celString(p.Name+": ") + " + " + msg}
	}
	// Ephemeral containers (kubectl debug) are a list of their own type: checked separately.
	in := func(list string) string { return "variables." + list + ".exists(c, " + bad + ")" }
	first := func(list string) string { return "variables." + list + ".filter(c, " + bad + ")[0].name" }
	return [2]string{"!" + in("containers") + " && !" + in("ephemeral"),
		celString(p.Name+": container ") + " + (" + in("containers") + " ? " + first("containers") + " : " + first("ephemeral") + ") + ': ' + " + msg}
}

// linuxOnly applies a rule to Linux pods only, as Pod Security restricted does for
// allowPrivilegeEscalation, capabilities and seccomp (Windows has none of them).
func linuxOnly(bad string) string { return "!variables.windows && (" + bad + ")" }

func scFalse(field string) string { // container securityContext field unset or false
	return fmt.Sprintf("(!has(c.securityContext) || !has(c.securityContext.%[1]s) || !c.securityContext.%[1]s)", field)
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

// CELString quotes s as a CEL string literal.
func CELString(s string) string { return celString(s) }
