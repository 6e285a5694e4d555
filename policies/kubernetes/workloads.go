// Package kubernetes holds kplane's policies for Kubernetes resources: workloads (the hardened
// cluster's admission baseline, evaluated at preview time with the very CEL the API server runs)
// and RBAC.
package kubernetes

import (
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/internal/anymap"
	"github.com/kplane/kplane/policies/pack"
)

// workloadKinds are the resources the admission baseline checks, as Pulumi type tokens.
var workloadKinds = map[string]bool{
	"kubernetes:core/v1:Pod": true, "kubernetes:core/v1:ReplicationController": true,
	"kubernetes:apps/v1:Deployment": true, "kubernetes:apps/v1:ReplicaSet": true, "kubernetes:apps/v1:StatefulSet": true,
	"kubernetes:apps/v1:DaemonSet": true, "kubernetes:batch/v1:Job": true, "kubernetes:batch/v1:CronJob": true,
}

type program struct {
	variables []struct {
		name string
		prg  cel.Program
	}
	validations []struct{ expr, msg cel.Program }
}

// WorkloadPolicies are the admission baseline for args as policies: the same CEL, evaluated on
// every workload a stack declares, so the violation shows in the preview instead of at apply.
func WorkloadPolicies(args *hardenedcluster.Args) ([]pack.Policy, error) {
	env, err := cel.NewEnv(
		cel.Variable("object", cel.DynType), cel.Variable("oldObject", cel.DynType), cel.Variable("request", cel.DynType),
		cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)), ext.Strings())
	if err != nil {
		return nil, err
	}
	compile := func(expr string) (cel.Program, error) {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			return nil, fmt.Errorf("%s: %w", expr, iss.Err())
		}
		return env.Program(ast)
	}
	var policies []pack.Policy
	for _, cp := range args.CELPolicies() {
		exempt := map[string]bool{}
		for _, ns := range args.ExemptNamespacesFor(cp.Name) {
			exempt[ns] = true
		}
		// The hardened cluster's node checks read the host by design; admission exempts their
		// namespace whenever they are on, and so does the pack.
		exempt[hardenedcluster.NodeCheckNamespace] = true
		// Compiled on first use: a pack starts (and the engine waits for it) before any resource
		// is analysed, and Pack warms these up meanwhile.
		compiled := sync.OnceValues(func() (program, error) {
			var p program
			for _, v := range cp.Variables {
				prg, err := compile(v[1])
				if err != nil {
					return p, fmt.Errorf("variable %s: %w", v[0], err)
				}
				p.variables = append(p.variables, struct {
					name string
					prg  cel.Program
				}{v[0], prg})
			}
			for _, v := range cp.Validations {
				e, err := compile(v[0])
				if err != nil {
					return p, err
				}
				m, err := compile(v[1])
				if err != nil {
					return p, fmt.Errorf("message: %w", err)
				}
				p.validations = append(p.validations, struct{ expr, msg cel.Program }{e, m})
			}
			return p, nil
		})
		policies = append(policies, pack.Policy{
			Name: cp.Name, Description: cp.Description, DescriptionKo: cp.DescriptionKo,
			Remediation: cp.Remediation + " (the hardened cluster refuses the same workload at admission)", RemediationKo: cp.RemediationKo,
			Enforcement: pack.Mandatory, Controls: controls(cp.Controls),
			Check: func(r pack.Resource) []string {
				p, err := compiled()
				if err != nil { // never a silent pass
					return []string{fmt.Sprintf("%s cannot be evaluated: %v", cp.Name, err)}
				}
				return p.check(r, exempt)
			},
		})
	}
	return policies, nil
}

// controls parses "CIS 5.2.2" style references.
func controls(refs []string) []pack.Control {
	var out []pack.Control
	for _, r := range refs {
		fw, id, _ := strings.Cut(r, " ")
		out = append(out, pack.Control{Framework: fw, ID: id})
	}
	return out
}

func (p program) check(r pack.Resource, exempt map[string]bool) []string {
	if !workloadKinds[r.Type] {
		return nil
	}
	obj := normalise(r.Props).(map[string]any)
	defaultVolumes(obj)
	ns := "default"
	if meta, ok := obj["metadata"].(map[string]any); ok {
		if n, ok := meta["namespace"].(string); ok && n != "" {
			ns = n
		}
	}
	if exempt[ns] {
		return nil
	}
	vars := map[string]any{}
	act := map[string]any{"object": obj, "oldObject": nil, "request": map[string]any{"namespace": ns, "operation": "CREATE"}, "variables": vars}
	for _, v := range p.variables {
		out, _, err := v.prg.Eval(act)
		if err != nil {
			return []string{fmt.Sprintf("cannot evaluate variable %s: %v", v.name, err)}
		}
		vars[v.name] = out.Value()
	}
	var msgs []string
	for _, v := range p.validations {
		out, _, err := v.expr.Eval(act)
		if err != nil {
			// Unknown values during a preview (outputs not known yet) cannot be judged.
			continue
		}
		if ok, _ := out.Value().(bool); ok {
			continue
		}
		msg, _, err := v.msg.Eval(act)
		if err != nil {
			msgs = append(msgs, "violation (message unavailable: "+err.Error()+")")
			continue
		}
		msgs = append(msgs, fmt.Sprint(msg.Value()))
	}
	return msgs
}

// defaultVolumes gives a volume without a source the emptyDir the API server defaults it to.
func defaultVolumes(obj map[string]any) {
	spec, _ := obj["spec"].(map[string]any)
	switch obj["kind"] {
	case "Pod":
	case "CronJob":
		spec, _ = anymap.Get(spec, "jobTemplate", "spec", "template", "spec").(map[string]any)
	default:
		spec, _ = anymap.Get(spec, "template", "spec").(map[string]any)
	}
	volumes, _ := spec["volumes"].([]any)
	for _, v := range volumes {
		if m, ok := v.(map[string]any); ok && len(m) == 1 && m["name"] != nil {
			m["emptyDir"] = map[string]any{}
		}
	}
}

// normalise makes a declared object look as the API server sees it once decoded: null fields
// are absent (CEL's has() is true for a null, so procMount: null would read as set), and
// whole-number floats (how JSON and protobuf Structs carry numbers) are int64.
func normalise(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if x != nil {
				out[k] = normalise(x)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalise(x)
		}
		return out
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t)
		}
	}
	return v
}
