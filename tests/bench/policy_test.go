package bench

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/policies"
	"github.com/kplane/kplane/policies/fixture"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/tests/fixtures"
)

// BenchmarkPolicyPack: time to validate 1,000 resources with the Kubernetes pack's policies,
// in-process (what the analyzer does per resource and once per stack, without the engine's
// RPC): 800 Deployments and 200 platform objects (the policy fixtures' compliant namespaces,
// realms, backups, routes, roles) judged by the stack policies too.
func BenchmarkPolicyPack(b *testing.B) {
	p, err := policies.Pack()
	if err != nil {
		b.Fatal(err)
	}
	cases, err := fixture.Load("../../policies/testdata")
	if err != nil {
		b.Fatal(err)
	}
	var platform []pack.Resource
	for len(platform) < 200 {
		for _, c := range cases {
			for _, r := range c.Pass {
				r.URN = fmt.Sprintf("%s-%d", r.URN, len(platform))
				platform = append(platform, r)
			}
		}
	}
	resources := make([]pack.Resource, 800, 1000)
	for i := range resources {
		spec := rules.GoodPodSpec()
		if i%10 == 0 {
			rules.SC(spec)["runAsUser"] = int64(0) // one in ten violates
		}
		obj, _, _ := fixtures.Workload("Deployment", "apps", fmt.Sprintf("w%d", i), spec)
		raw, _ := json.Marshal(obj)
		var props map[string]any
		_ = json.Unmarshal(raw, &props)
		resources[i] = pack.Resource{Type: "kubernetes:apps/v1:Deployment", Name: fmt.Sprintf("w%d", i), Props: props}
	}
	resources = append(resources, platform[:200]...)
	start := time.Now()
	violations := 0
	for _, r := range resources {
		violations += len(p.Evaluate(r, nil))
	}
	violations += len(p.EvaluateStack(resources, nil))
	report(b, time.Since(start).Seconds(), "s/1000-resources", fmt.Sprintf("validate 1,000 resources (800 Deployments, 200 platform objects) with %d policies (%d violations)", len(p.Policies), violations))
}
