package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"k8s.io/client-go/kubernetes"

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
			platformAt50(b, ctx, dir, cfg, cs, clusters[:n])
		}
		timeIt(b, fmt.Sprintf("pulumi destroy, fleet of %d", n), fmt.Sprintf("s/destroy-%d", n), func() error { _, err := s.Destroy(ctx); return err })
	}
}

// platformAt50: the composed prod platform on the 50 members (every tenth with audit values):
// kplane-fleet render (members of the same values and APIs render once), then the fleet stack
// with the platform (each member's credentials from its render, the AppProjects and
// ApplicationSets): preview, first up, an up with nothing to change, the first rollout (health
// checks and enabling, waves of 5; Argo CD's sync is not run in the bench) and a rollout with
// nothing to change, and destroy.
func platformAt50(b *testing.B, ctx context.Context, dir string, cfg fleet.Config, mgmt kubernetes.Interface, members []*testbed.Cluster) {
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	// A prod member runs sigstore's policy-controller (the environment requires image trust):
	// its ClusterImagePolicy CRD, upstream's, is what the render finds there.
	cip := filepath.Join(pinnedModule(b, "POLICY_CONTROLLER_VERSION", "github.com/sigstore/policy-controller"), "config", "300-clusterimagepolicy.yaml")
	for _, c := range members {
		if err := c.Apply(ctx, cip); err != nil {
			b.Fatal(err)
		}
	}
	b.Chdir(dir) // the renders' path is relative to the checkout kplane-fleet runs in
	envs := filepath.Join(dir, "environments")
	prod, err := os.ReadFile(filepath.Join(root, "environments", "prod", "platform.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	platform := strings.Replace(string(prod), "kplane:environment: prod", "kplane:environment: bench", 1)
	platform = strings.Replace(platform, "specsDir: environments/apis", "specsDir: "+filepath.Join(root, "environments", "apis"), 1)
	if err := os.MkdirAll(filepath.Join(envs, "bench"), 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(envs, "bench", "platform.yaml"), []byte(platform), 0o600); err != nil {
		b.Fatal(err)
	}
	for i := range cfg.Clusters {
		if i%10 == 9 {
			cfg.Clusters[i].Values = map[string]any{"security": map[string]any{"admission": map[string]any{"mode": "audit"}}}
		}
	}
	renders, objects := 0, 0
	timeIt(b, "kplane-fleet render: 50 members, the composed prod platform", "s/render-50", func() error {
		return fleet.Render(ctx, fleet.RenderOptions{Environments: envs, Charts: os.Getenv("KPLANE_CHARTS")}, "bench", cfg.Clusters,
			func(r *fleetmember.Rendered, from string, _ time.Duration) {
				objects += r.Objects
				if from == "" {
					renders++
				}
			})
	})
	report(b, float64(renders), "renders", "of which rendered (the others copied: same values and APIs)")
	report(b, float64(objects), "objects", "objects rendered for the 50 members")
	cfg.Platform = &fleetmember.PlatformArgs{Environment: "bench", RepoURL: "https://git.example.com/platform.git", Revision: "v1.0.0", ArgoCDNamespace: "argocd"}
	raw, _ := json.Marshal(cfg)
	s, err := automation.Open(ctx, automation.Options{Project: fleet.Project, Stack: "bench-platform-50", Program: fleet.Program, StateDir: dir,
		Config: auto.ConfigMap{"kplane:fleet": auto.ConfigValue{Value: string(raw)}}})
	if err != nil {
		b.Fatal(err)
	}
	timeIt(b, "pulumi preview, 50 members with their renders' credentials", "s/platform-preview-50", func() error { _, err := s.Preview(ctx); return err })
	timeIt(b, "pulumi up, 50 members with their renders' credentials", "s/platform-up-50", func() error { _, err := s.Up(ctx); return err })
	timeIt(b, "pulumi up with nothing to change, 50 members", "s/platform-noop-up-50", func() error { _, err := s.Up(ctx); return err })
	r := &rollout.Rollout{Clusters: cfg.Members(), Batch: 5, Management: mgmt, ArgoCDNamespace: "argocd", StateFile: filepath.Join(dir, "platform-rollout.json")}
	timeIt(b, "first rollout, 50 members in waves of 5 (Argo CD's sync not run)", "s/platform-rollout-50", func() error { _, err := r.Run(ctx, false); return err })
	timeIt(b, "rollout with nothing to change, 50 members", "s/platform-noop-rollout-50", func() error { _, err := r.Run(ctx, false); return err })
	timeIt(b, "pulumi destroy, 50 members with their renders' credentials", "s/platform-destroy-50", func() error { _, err := s.Destroy(ctx); return err })
}
