package bench

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/kplane/kplane/policies/kubernetes"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/tests/fixtures"
)

// BenchmarkPolicyPack: time to validate 1,000 workloads with the Kubernetes pack's policies,
// in-process (what the analyzer does per resource, without the engine's RPC).
func BenchmarkPolicyPack(b *testing.B) {
	p, err := kubernetes.Pack()
	if err != nil {
		b.Fatal(err)
	}
	resources := make([]pack.Resource, 1000)
	for i := range resources {
		spec := fixtures.GoodPodSpec()
		if i%10 == 0 {
			fixtures.SC(spec)["runAsUser"] = int64(0) // one in ten violates
		}
		obj, _, _ := fixtures.Workload("Deployment", "apps", fmt.Sprintf("w%d", i), spec)
		raw, _ := json.Marshal(obj)
		var props map[string]any
		_ = json.Unmarshal(raw, &props)
		resources[i] = pack.Resource{Type: "kubernetes:apps/v1:Deployment", Name: fmt.Sprintf("w%d", i), Props: props}
	}
	start := time.Now()
	violations := 0
	for _, r := range resources {
		violations += len(p.Evaluate(r, nil))
	}
	report(b, time.Since(start).Seconds(), "s/1000-resources", fmt.Sprintf("validate 1,000 Deployments with %d policies (%d violations)", len(p.Policies), violations))
}
