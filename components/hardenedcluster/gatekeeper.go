package hardenedcluster

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/anymap"
	"github.com/kplane/kplane/internal/k8sobj"
)

// The Gatekeeper engine: every admission policy as a Gatekeeper ConstraintTemplate
// (K8sNativeValidation, i.e. CEL) whose arguments (team namespaces, registries, exceptions) are
// the constraint's parameters, so the templates are one library for every cluster; Gatekeeper
// itself installed from its official chart. Choose it for audit of existing objects, one policy
// engine for CEL and Rego, and central violation reporting.

// GatekeeperArgs configure the Gatekeeper installation (Admission.Engine "gatekeeper").
type GatekeeperArgs struct {
	// Chart overrides where the official chart comes from (default: the Gatekeeper chart
	// repository at GatekeeperChart's version). Use Path or a mirror when air-gapped.
	Chart addon.Chart `json:"chart,omitempty"`
	// Namespace Gatekeeper runs in (default gatekeeper-system). kplane creates it, exempt from
	// Gatekeeper's own webhook.
	Namespace string `json:"namespace,omitempty"`
	// Image of the Gatekeeper manager (its controller, webhook and audit) by digest
	// (<registry>/gatekeeper@sha256:...); default: the chart's, by tag.
	Image string `json:"image,omitempty"`
	// Values are chart values laid over the ones kplane computes (see gatekeeperValues).
	Values map[string]any `json:"values,omitempty"`
	// External: Gatekeeper is installed and run by someone else; kplane only adds its templates
	// and constraints.
	External bool `json:"external,omitempty"`
	// FailOpen lets requests through when the Gatekeeper webhook cannot answer (Gatekeeper's own
	// default). Default false: the webhook fails closed in enforce mode, so an outage of
	// Gatekeeper cannot become an outage of the policies. Pod Security Admission stays in force
	// either way.
	FailOpen bool `json:"failOpen,omitempty"`
}

// GatekeeperChart is the official chart kplane installs by default.
var GatekeeperChart = addon.Chart{Repo: "https://open-policy-agent.github.io/gatekeeper/charts", Name: "gatekeeper", Version: "3.23.1"}

func (g GatekeeperArgs) namespace() string {
	if g.Namespace == "" {
		return "gatekeeper-system"
	}
	return g.Namespace
}

// gatekeeperKinds are the workload kinds the constraints match.
var gatekeeperKinds = []any{
	map[string]any{"apiGroups": []any{""}, "kinds": []any{"Pod", "ReplicationController"}},
	map[string]any{"apiGroups": []any{"apps"}, "kinds": []any{"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"}},
	map[string]any{"apiGroups": []any{"batch"}, "kinds": []any{"Job", "CronJob"}},
}

// gatekeeperVariables are the template's own variables, after the shared ones: whether the
// object is covered by one of the constraint's exceptions, and whether an update leaves the
// spec alone (labels, finalizers: controllers and garbage collection must always get through).
var gatekeeperVariables = [][2]string{
	{"excepted", "has(variables.params.exceptions) && variables.params.exceptions.exists(e, e.namespace == request.namespace && " +
		"(!has(e.workload) || e.workload == '' || (has(e.namePattern) && object.metadata.name.matches(e.namePattern)) || " +
		"(has(e.generateNamePattern) && has(object.metadata.generateName) && object.metadata.generateName.matches(e.generateNamePattern))))"},
	{"unchanged", "request.operation == 'UPDATE' && oldObject != null && has(oldObject.spec) && object.spec == oldObject.spec"},
}

// templateKind is the constraint kind of a policy: kplane-no-privileged -> KplaneNoPrivileged.
func templateKind(policy string) string {
	var b strings.Builder
	for _, part := range strings.Split(policy, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// gatekeeperTemplate renders one policy as a ConstraintTemplate (templates.gatekeeper.sh/v1).
func gatekeeperTemplate(p rules.Policy) map[string]any {
	variables := []any{}
	for _, v := range slices.Concat(rules.Variables, gatekeeperVariables) {
		variables = append(variables, map[string]any{"name": v[0], "expression": v[1]})
	}
	validations := []any{}
	for _, v := range p.CEL(rules.ConstraintParams) {
		validations = append(validations, map[string]any{"expression": "variables.excepted || variables.unchanged || (" + v[0] + ")", "messageExpression": v[1]})
	}
	stringList := map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
	properties := map[string]any{"exceptions": map[string]any{"type": "array", "items": map[string]any{
		"type": "object",
		"properties": map[string]any{
			"namespace": map[string]any{"type": "string"}, "workload": map[string]any{"type": "string"},
			"namePattern": map[string]any{"type": "string"}, "generateNamePattern": map[string]any{"type": "string"},
			"reason": map[string]any{"type": "string"}, "expires": map[string]any{"type": "string"},
		},
	}}}
	for _, name := range p.Params {
		properties[name] = stringList
	}
	kind := templateKind(p.Name)
	return map[string]any{
		"apiVersion": "templates.gatekeeper.sh/v1",
		"kind":       "ConstraintTemplate",
		"metadata": map[string]any{
			"name":   strings.ToLower(kind),
			"labels": map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy},
			"annotations": map[string]any{
				"description":                p.Description,
				wellknown.ControlsAnnotation: strings.Join(p.Controls, ", "),
			},
		},
		"spec": map[string]any{
			"crd": map[string]any{"spec": map[string]any{
				"names":      map[string]any{"kind": kind},
				"validation": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "properties": properties}},
			}},
			"targets": []any{map[string]any{
				"target": "admission.k8s.gatekeeper.sh",
				"code": []any{map[string]any{
					"engine": "K8sNativeValidation",
					"source": map[string]any{"variables": variables, "validations": validations},
				}},
			}},
		},
	}
}

// gatekeeperConstraint renders the constraint of a policy for these arguments: its parameters
// and the exceptions in force at now (with reason and expiry, so they stay listed).
func (a *Args) gatekeeperConstraint(p rules.Policy, now time.Time) map[string]any {
	excluded := []any{}
	for _, ns := range a.ExemptNamespacesFor(p.Name) {
		excluded = append(excluded, ns)
	}
	action := "deny"
	if a.Admission.Mode == "audit" {
		action = "warn"
	}
	params := map[string]any{}
	for _, name := range p.Params {
		params[name] = anymap.Of(p.Values[name])
	}
	active, expired := a.activeExceptions(p.Name, now)
	exceptions := []any{}
	for _, e := range active {
		x := map[string]any{"namespace": e.Namespace, "workload": e.Workload, "reason": e.Reason, "expires": e.Expires}
		if e.Workload != "" {
			x["namePattern"], x["generateNamePattern"] = e.namePatterns()
		}
		exceptions = append(exceptions, x)
	}
	params["exceptions"] = exceptions
	annotations := map[string]any{wellknown.ControlsAnnotation: strings.Join(p.Controls, ", ")}
	if len(expired) > 0 {
		gone, _ := json.Marshal(expired)
		annotations[wellknown.ExpiredExceptionsAnnotation] = string(gone)
	}
	return map[string]any{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1",
		"kind":       templateKind(p.Name),
		"metadata": map[string]any{
			"name":        p.Name,
			"labels":      map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy},
			"annotations": annotations,
		},
		"spec": map[string]any{
			"enforcementAction": action,
			"match":             map[string]any{"kinds": gatekeeperKinds, "excludedNamespaces": excluded},
			"parameters":        params,
		},
	}
}

// gatekeeperValues are the chart values kplane sets; GatekeeperArgs.Values go on top.
func (a *Args) gatekeeperValues() map[string]any {
	failure := "Fail"
	if a.Admission.Gatekeeper.FailOpen || a.Admission.Mode == "audit" {
		failure = "Ignore"
	}
	var rules []any
	for _, r := range gatekeeperKinds {
		m := r.(map[string]any)
		var resources []any
		for _, k := range m["kinds"].([]any) {
			resources = append(resources, strings.ToLower(k.(string))+"s")
			if k == "Pod" { // kubectl debug adds ephemeral containers through this subresource only
				resources = append(resources, "pods/ephemeralcontainers")
			}
		}
		rules = append(rules, map[string]any{"apiGroups": m["apiGroups"], "apiVersions": []any{"*"},
			"operations": []any{"CREATE", "UPDATE"}, "resources": resources, "scope": "Namespaced"})
	}
	values := map[string]any{
		"validatingWebhookFailurePolicy": failure,
		// The webhook sees only what the constraints check (workloads): no latency on other
		// requests, and no chicken-and-egg with the chart's own CRDs and Services.
		"validatingWebhookCustomRules": rules,
		// kplane uses no mutation: one webhook less on every request.
		"disableMutation": true,
		// Helm hooks do not run under the provider's Chart; kplane creates and labels the
		// namespace itself, and the CRDs come from the chart's crds/ folder.
		"postInstall":  map[string]any{"labelNamespace": map[string]any{"enabled": false}, "probeWebhook": map[string]any{"enabled": false}},
		"postUpgrade":  map[string]any{"labelNamespace": map[string]any{"enabled": false}},
		"preUninstall": map[string]any{"deleteWebhookConfigurations": map[string]any{"enabled": false}},
		"upgradeCRDs":  map[string]any{"enabled": false},
		// An empty annotations map on the chart's Secret shows as a change on every update.
		"secretAnnotations":   map[string]any{wellknown.PurposeAnnotation: "Gatekeeper webhook serving certificate"},
		"emitAdmissionEvents": true,
		"emitAuditEvents":     true,
		"logDenies":           true,
	}
	if img := a.Admission.Gatekeeper.Image; img != "" { // the chart writes repository alone when release is empty
		values["image"] = map[string]any{"repository": img, "release": ""}
	}
	return addon.Merge(values, a.Admission.Gatekeeper.Values)
}

// newGatekeeper installs Gatekeeper (unless External), then per policy its template and its
// constraint. It returns the policy names. The chart comes after the team namespaces: its
// webhooks check namespaces too and would refuse them until Gatekeeper runs.
func newGatekeeper(ctx *pulumi.Context, name string, args *Args, now time.Time, namespaces []pulumi.Resource, opts ...pulumi.ResourceOption) ([]string, error) {
	g := args.Admission.Gatekeeper
	var installed []pulumi.Resource
	if !g.External {
		ns, err := corev1.NewNamespace(ctx, name+"-gatekeeper-ns", &corev1.NamespaceArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(g.namespace()),
				Labels: pulumi.StringMap{
					"admission.gatekeeper.sh/ignore":             pulumi.String("no-self-managing"),
					wellknown.ManagedByLabel:                     pulumi.String("kplane"),
					"pod-security.kubernetes.io/enforce":         pulumi.String("restricted"),
					"pod-security.kubernetes.io/enforce-version": pulumi.String(args.podSecurityVersion()),
				},
			},
		}, opts...)
		if err != nil {
			return nil, err
		}
		src := g.Chart.Or(GatekeeperChart)
		release, err := helmv4.NewChart(ctx, name+"-gatekeeper", src.Args("gatekeeper", g.namespace(), args.gatekeeperValues()),
			append(opts, pulumi.DependsOn(append([]pulumi.Resource{ns}, namespaces...)))...)
		if err != nil {
			return nil, err
		}
		installed = []pulumi.Resource{release}
	}
	var names []string
	for _, p := range args.policies() {
		_, expired := args.activeExceptions(p.Name, now)
		warnExpired(ctx, p.Name, expired)
		tpl, err := k8sobj.Object(ctx, name+"-template-"+p.Name, gatekeeperTemplate(p), append(opts, pulumi.DependsOn(installed))...)
		if err != nil {
			return nil, err
		}
		// The constraint's kind exists once Gatekeeper has compiled the template (seconds); the
		// provider retries creation until then.
		if _, err := k8sobj.Object(ctx, name+"-constraint-"+p.Name, args.gatekeeperConstraint(p, now), append(opts, pulumi.DependsOn([]pulumi.Resource{tpl}))...); err != nil {
			return nil, err
		}
		names = append(names, p.Name)
	}
	return names, nil
}
