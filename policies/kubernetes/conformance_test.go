package kubernetes

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/tests/fixtures"
)

// TestPodSecurityConformance: the pack (the same CEL as the cluster's policies) refuses every
// pod Kubernetes' Pod Security fixtures fail, and admits every pod they pass apart from
// kplane's platform-only rules, which it names.
func TestPodSecurityConformance(t *testing.T) {
	policies, err := WorkloadPolicies(&hardenedcluster.Args{})
	require.NoError(t, err)
	p := &pack.Pack{Name: "conformance", Version: "0", Policies: policies}
	judge := func(pod map[string]any) []string {
		var names []string
		for _, v := range p.Evaluate(pack.Resource{Type: "kubernetes:core/v1:Pod", Name: "fixture", Props: pod}, nil) {
			if !slices.Contains(names, v.Policy.Name) {
				names = append(names, v.Policy.Name)
			}
		}
		return names
	}
	fixturesOf := func(level, outcome string) map[string]map[string]any {
		pods, err := fixtures.PodSecurity(level, outcome)
		require.NoError(t, err)
		return pods
	}
	n := 0
	for _, level := range []string{"baseline", "restricted"} {
		for name, pod := range fixturesOf(level, "fail") {
			n++
			standard := slices.DeleteFunc(judge(pod), func(p string) bool { return slices.Contains(fixtures.PodSecurityPlatformOnly, p) })
			assert.NotEmpty(t, standard, "%s: the standard refuses it; kplane must too, by a Pod Security rule", name)
		}
		allowed := fixtures.PodSecurityPlatformOnly
		if level == "baseline" {
			allowed = append(slices.Clone(allowed), rules.RestrictedOnly()...)
		}
		for name, pod := range fixturesOf(level, "pass") {
			n++
			for _, policy := range judge(pod) {
				assert.Contains(t, allowed, policy, "%s: the standard admits it; kplane refuses it with %s", name, policy)
			}
		}
	}
	t.Logf("%d Pod Security fixtures (k8s.io/pod-security-admission %s) judged", n, fixtures.PodSecurityModule)
}
