package kubernetes

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/tests/fixtures"
)

// resource is a fixture workload as the engine hands it to the pack (JSON numbers as floats).
func resource(t *testing.T, kind, ns, name string, spec map[string]any) pack.Resource {
	obj, group, _ := fixtures.Workload(kind, ns, name, spec)
	raw, err := json.Marshal(obj)
	require.NoError(t, err)
	var props map[string]any
	require.NoError(t, json.Unmarshal(raw, &props))
	version := "v1"
	if group != "" {
		version = group + "/v1"
	}
	if group == "" {
		version = "core/v1"
	}
	return pack.Resource{Type: "kubernetes:" + version + ":" + kind, Name: name, URN: "urn:" + name, Props: props}
}

func testPack(t *testing.T) *pack.Pack {
	policies, err := WorkloadPolicies(&hardenedcluster.Args{
		Teams:     []hardenedcluster.Team{{Name: "apps", Namespaces: []string{"apps"}}},
		Admission: hardenedcluster.AdmissionArgs{AllowedRegistries: []string{"registry.example.com"}},
	})
	require.NoError(t, err)
	p := &pack.Pack{Name: "kplane-kubernetes", Version: "0.1.0", Policies: policies}
	require.NoError(t, p.Validate())
	return p
}

// TestWorkloadPolicies: every admission fixture is refused at preview time with the same message
// the API server gives; the ordinary workloads pass.
func TestWorkloadPolicies(t *testing.T) {
	p := testPack(t)
	for _, kind := range []string{"Pod", "Deployment", "StatefulSet", "DaemonSet", "CronJob"} {
		assert.Empty(t, p.Evaluate(resource(t, kind, "apps", "good", rules.GoodPodSpec()), nil), kind)
	}
	for _, v := range rules.Samples() {
		spec := rules.GoodPodSpec()
		v.Mutate(spec)
		r := resource(t, "Deployment", cmp.Or(v.Namespace, "apps"), v.Name, spec)
		fixtures.Annotate(r.Props, v.Annotations)
		got := p.Evaluate(r, nil)
		var msgs []string
		for _, g := range got {
			msgs = append(msgs, g.Message)
		}
		assert.Contains(t, strings.Join(msgs, "\n"), v.Policy+": "+v.Want, v.Name)
	}
	stray := p.Evaluate(resource(t, "Deployment", "default", "stray", rules.GoodPodSpec()), nil)
	require.Len(t, stray, 1)
	assert.Contains(t, stray[0].Message, "kplane-allowed-namespaces: namespace default: not a team namespace")
	assert.Equal(t, pack.Mandatory, stray[0].Level)
	assert.Empty(t, p.Evaluate(resource(t, "Deployment", "kube-system", "agent", map[string]any{"hostNetwork": true, "containers": []any{}}), nil), "exempt namespaces")
	assert.Empty(t, p.Evaluate(resource(t, "CronJob", hardenedcluster.NodeCheckNamespace, "node-check-general", map[string]any{"hostPID": false,
		"volumes": []any{map[string]any{"name": "etc", "hostPath": map[string]any{"path": "/etc"}}}, "containers": []any{}}), nil), "the node checks' namespace")

	advisory := p.Evaluate(resource(t, "Deployment", "default", "stray", rules.GoodPodSpec()), map[string]pack.Enforcement{"kplane-allowed-namespaces": pack.Advisory})
	assert.Equal(t, pack.Advisory, advisory[0].Level, "the pack configuration sets the level")
	assert.Empty(t, p.Evaluate(resource(t, "Deployment", "default", "stray", rules.GoodPodSpec()), map[string]pack.Enforcement{"kplane-allowed-namespaces": pack.Disabled}))
}

// TestNullFields: a field set to null is absent, as the API server decodes it (the pack sees
// declared inputs, which may carry nulls).
func TestNullFields(t *testing.T) {
	p := testPack(t)
	spec := rules.GoodPodSpec()
	rules.SC(spec)["procMount"] = nil
	rules.SC(spec)["seLinuxOptions"] = nil
	rules.PodSC(spec)["appArmorProfile"] = nil
	spec["hostNetwork"] = nil
	assert.Empty(t, p.Evaluate(resource(t, "Deployment", "apps", "nulls", spec), nil))
}

// TestBaselineTeam: a team at PodSecurity baseline is not held to the restricted-only rules;
// baseline's own (privileged, host namespaces, ...) and kplane's platform rules still apply.
func TestBaselineTeam(t *testing.T) {
	policies, err := WorkloadPolicies(&hardenedcluster.Args{Teams: []hardenedcluster.Team{
		{Name: "apps", Namespaces: []string{"apps"}}, {Name: "legacy", Namespaces: []string{"legacy"}, PodSecurity: "baseline"}}})
	require.NoError(t, err)
	p := &pack.Pack{Name: "t", Version: "0", Policies: policies}
	spec := rules.GoodPodSpec()
	spec["securityContext"] = map[string]any{}
	rules.SC(spec)["capabilities"] = map[string]any{"add": []any{"CHOWN"}}
	delete(rules.SC(spec), "allowPrivilegeEscalation")
	names := func(ns string, spec map[string]any) []string {
		var out []string
		for _, v := range p.Evaluate(resource(t, "Deployment", ns, "old", spec), nil) {
			out = append(out, v.Policy.Name)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	assert.Empty(t, names("legacy", spec), "baseline team: the restricted-only rules do not apply")
	assert.Equal(t, []string{"kplane-capabilities", "kplane-privilege-escalation", "kplane-run-as-non-root", "kplane-seccomp"}, names("apps", spec))
	rules.SC(spec)["privileged"] = true
	assert.Contains(t, names("legacy", spec), "kplane-no-privileged", "baseline still refuses privileged")
}
