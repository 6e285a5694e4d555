package hardenedcluster

import (
	"strings"
)

// The Gatekeeper library: every admission policy of the baseline as a Gatekeeper
// ConstraintTemplate (K8sNativeValidation, i.e. CEL) and a constraint, generated from the same
// catalog as the ValidatingAdmissionPolicies, for clusters that run Gatekeeper (audit of existing
// objects, one policy engine for CEL and Rego, central reporting).

// gatekeeperKinds are the workload kinds the constraints match.
var gatekeeperKinds = []any{
	map[string]any{"apiGroups": []any{""}, "kinds": []any{"Pod", "ReplicationController"}},
	map[string]any{"apiGroups": []any{"apps"}, "kinds": []any{"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"}},
	map[string]any{"apiGroups": []any{"batch"}, "kinds": []any{"Job", "CronJob"}},
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

// GatekeeperTemplate renders one policy as a ConstraintTemplate (templates.gatekeeper.sh/v1).
func gatekeeperTemplate(p policyDef) map[string]any {
	variables := []any{}
	for _, v := range celVariables {
		variables = append(variables, map[string]any{"name": v[0], "expression": v[1]})
	}
	validations := []any{}
	for _, r := range p.Validations {
		expr, msg := r.celExpression()
		validations = append(validations, map[string]any{"expression": expr, "messageExpression": "'" + p.Name + ": ' + " + msg})
	}
	kind := templateKind(p.Name)
	return map[string]any{
		"apiVersion": "templates.gatekeeper.sh/v1",
		"kind":       "ConstraintTemplate",
		"metadata": map[string]any{
			"name": strings.ToLower(kind),
			"annotations": map[string]any{
				"description":        p.Description,
				"kplane.io/controls": strings.Join(p.Controls, ", "),
			},
		},
		"spec": map[string]any{
			"crd": map[string]any{"spec": map[string]any{"names": map[string]any{"kind": kind}}},
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

// gatekeeperConstraint renders the constraint of a policy for these arguments.
func (a *Args) gatekeeperConstraint(p policyDef) map[string]any {
	excluded := []any{}
	for _, ns := range a.exemptNamespaces() {
		excluded = append(excluded, ns)
	}
	action := "deny"
	if a.Admission.Mode == "audit" {
		action = "warn"
	}
	return map[string]any{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1",
		"kind":       templateKind(p.Name),
		"metadata":   map[string]any{"name": p.Name},
		"spec": map[string]any{
			"enforcementAction": action,
			"match":             map[string]any{"kinds": gatekeeperKinds, "excludedNamespaces": excluded},
		},
	}
}
