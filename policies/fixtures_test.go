package policies

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/policies/fixture"
	"github.com/kplane/kplane/policies/kubernetes"
	"github.com/kplane/kplane/policies/pack"
)

// TestPolicyFixtures: every policy of the pack has a compliant and a violating fixture. The
// compliant ones pass the whole pack; each violating one breaks exactly its policy, with the
// message its file names. (The same files go through a real preview in the integration tests.)
func TestPolicyFixtures(t *testing.T) {
	p, err := Pack()
	require.NoError(t, err)
	cases, err := fixture.Load("testdata")
	require.NoError(t, err)
	byPolicy := map[string]fixture.Case{}
	for _, c := range cases {
		byPolicy[c.Policy] = c
	}

	workload, err := kubernetes.WorkloadPolicies(&hardenedcluster.Args{})
	require.NoError(t, err)
	var covered []string
	for _, v := range rules.Samples() {
		covered = append(covered, v.Policy)
	}
	for _, pol := range p.Policies {
		switch {
		case slices.ContainsFunc(workload, func(w pack.Policy) bool { return w.Name == pol.Name }):
			// Pod-spec policies: tests/fixtures.Violations, run through the pack in TestWorkloadPolicies.
			if !slices.Contains([]string{"kplane-allowed-namespaces", "kplane-allowed-registries"}, pol.Name) {
				assert.Contains(t, covered, pol.Name, "a violating workload fixture for %s", pol.Name)
			}
		case strings.HasPrefix(pol.Name, "kplane-eks-") || strings.HasPrefix(pol.Name, "kplane-s3-"):
			// AWS resources: policies/aws's tests (pulumi-aws cannot preview here).
		default:
			assert.Contains(t, byPolicy, pol.Name, "policies/testdata/%s/{pass,fail}.yaml", pol.Name)
		}
	}

	var all []pack.Resource
	for _, c := range cases {
		all = append(all, c.Pass...)
		for _, v := range evaluate(p, c.Pass) {
			t.Errorf("%s: pass.yaml: %s: %s", c.Policy, v.Policy.Name, v.Message)
		}
		got := evaluate(p, c.Fail)
		var msgs []string
		for _, v := range got {
			assert.Equal(t, c.Policy, v.Policy.Name, "%s: fail.yaml breaks only its policy: %s", c.Policy, v.Message)
			msgs = append(msgs, v.Message)
		}
		assert.Contains(t, strings.Join(msgs, "\n"), c.Want, c.Policy)
	}
	assert.Empty(t, evaluate(p, all), "the compliant fixtures together pass")
}

func evaluate(p *pack.Pack, rs []pack.Resource) []pack.Violation {
	var out []pack.Violation
	for _, r := range rs {
		out = append(out, p.Evaluate(r, nil)...)
	}
	return append(out, p.EvaluateStack(rs, nil)...)
}
