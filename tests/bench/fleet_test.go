package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"

	"github.com/kplane/kplane/components/fleetmember"
	"github.com/kplane/kplane/components/fleetmember/rollout"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/stacks/fleet"
	"github.com/kplane/kplane/tests/testbed"
)

// BenchmarkFleet: the fleet stack's preview and first up for environments of 1, 10 and 50
// members. Members are real local control planes (kcp: etcd and kube-apiserver in one process,
// one KWOK node each), the first also the management cluster. Then the wave runner over the
// members (batches of 5): its time per cluster beyond the health checks themselves.
func BenchmarkFleet(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	var clusters []*testbed.Cluster
	defer func() {
		for _, c := range clusters {
			_ = c.Stop()
		}
	}()
	grow := func(n int) {
		var mu sync.Mutex
		for len(clusters) < n {
			batch := min(5, n-len(clusters))
			var wg sync.WaitGroup
			for i := range batch {
				idx := len(clusters) + i
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := testbed.Start(ctx, fmt.Sprintf("m%02d", idx), filepath.Join(dir, fmt.Sprintf("m%02d", idx)), testbed.Options{Nodes: 1})
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					clusters = append(clusters, c)
					mu.Unlock()
				}()
			}
			wg.Wait()
			if b.Failed() {
				b.FailNow()
			}
		}
	}
	for _, n := range []int{1, 10, 50} {
		start := time.Now()
		grow(n)
		report(b, time.Since(start).Seconds(), fmt.Sprintf("s/start-%d", n), fmt.Sprintf("fleet of %d: members' control planes started (to %d)", n, n))
		mgmt := clusters[0]
		cs, err := mgmt.Clientset()
		if err != nil {
			b.Fatal(err)
		}
		if err := testbed.InstallArgoCD(ctx, mgmt); err != nil { // what the management preflight looks for
			b.Fatal(err)
		}
		cfg := fleet.Config{FleetArgs: fleetmember.FleetArgs{Environment: "bench", Management: mgmt.Kubeconfig}}
		for i, c := range clusters[:n] {
			cfg.Clusters = append(cfg.Clusters, fleetmember.ClusterArgs{Name: fmt.Sprintf("member-%02d", i), Kubeconfig: c.Kubeconfig,
				Labels: map[string]string{"region": fmt.Sprintf("r%d", i%3)}})
		}
		raw, _ := json.Marshal(cfg)
		s, err := automation.Open(ctx, automation.Options{Project: fleet.Project, Stack: fmt.Sprintf("bench-%d", n), Program: fleet.Program, StateDir: dir,
			Config: auto.ConfigMap{"kplane:fleet": auto.ConfigValue{Value: string(raw)}}})
		if err != nil {
			b.Fatal(err)
		}
		timeIt(b, fmt.Sprintf("pulumi preview, fleet of %d (preflight of every member)", n), fmt.Sprintf("s/preview-%d", n), func() error { _, err := s.Preview(ctx); return err })
		timeIt(b, fmt.Sprintf("pulumi up, fleet of %d (registers every member)", n), fmt.Sprintf("s/up-%d", n), func() error { _, err := s.Up(ctx); return err })
		if n == 50 {
			r := &rollout.Rollout{Clusters: cfg.Members(), Batch: 5, Management: cs, StateFile: filepath.Join(dir, "rollout.json")}
			start := time.Now()
			st, err := r.Run(ctx, false)
			if err != nil {
				b.Fatal(err)
			}
			total := time.Since(start).Seconds()
			checks := 0.0
			for _, w := range st.Waves {
				longest := 0.0
				for _, h := range w.Health {
					longest = max(longest, h.Seconds)
				}
				checks += longest
			}
			report(b, total/float64(n)*1000, "ms/cluster-rollout", "wave runner, 50 members in waves of 5: time per cluster")
			report(b, (total-checks)/float64(n)*1000, "ms/cluster-overhead", "of which beyond the health checks (enabling, state file)")
		}
		timeIt(b, fmt.Sprintf("pulumi destroy, fleet of %d", n), fmt.Sprintf("s/destroy-%d", n), func() error { _, err := s.Destroy(ctx); return err })
	}
}
