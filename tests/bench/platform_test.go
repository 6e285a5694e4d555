package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"

	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/stacks/platform"
	"github.com/kplane/kplane/tests/testbed"
)

// environment is environments/<env> for a bench cluster: charts from the tool cache, the API
// documents' folder from here, and no wait for a backup location (no Velero runs).
func environment(b *testing.B, env, kubeconfig string) auto.ConfigMap {
	cfg, err := automation.LoadEnvironment("../../environments", env, "platform")
	if err != nil {
		b.Fatal(err)
	}
	cfg["kplane:kubeconfig"] = auto.ConfigValue{Value: kubeconfig, Secret: true}
	cfg["kplane:charts"] = auto.ConfigValue{Value: os.Getenv("KPLANE_CHARTS")}
	specs, _ := filepath.Abs("../../environments/apis")
	patch(b, cfg, "kplane:gateway", func(g map[string]any) { g["specsDir"] = specs })
	patch(b, cfg, "kplane:backup", func(v map[string]any) { v["storage"].(map[string]any)["waitSeconds"] = -1 })
	return cfg
}

func patch(b *testing.B, cfg auto.ConfigMap, key string, f func(map[string]any)) {
	var m map[string]any
	if err := json.Unmarshal([]byte(cfg[key].Value), &m); err != nil {
		b.Fatal(err)
	}
	f(m)
	raw, _ := json.Marshal(m)
	cfg[key] = auto.ConfigValue{Value: string(raw)}
}

// scaled adds teams (each a namespace with three services, in the mesh and the backups) to an
// environment: a platform of a large organisation.
func scaled(b *testing.B, cfg auto.ConfigMap, teams int) {
	patch(b, cfg, "kplane:security", func(s map[string]any) {
		for i := range teams {
			ns := fmt.Sprintf("team-%02d", i)
			s["teams"] = append(s["teams"].([]any), map[string]any{"name": ns, "namespaces": []any{ns}})
			for _, svc := range []string{"api", "worker", "db"} {
				s["services"] = append(s["services"].([]any), map[string]any{"name": svc, "namespace": ns,
					"rules": []any{map[string]any{"resources": []any{"configmaps"}, "verbs": []any{"get", "list", "watch"}}}})
			}
		}
	})
}

func created(r auto.PreviewResult) int { return r.ChangeSummary["create"] }

// BenchmarkPlatformComposed: the composed platform against a local cluster.
//   - prod (environments/prod as it is): preview on an empty cluster, with its resource count.
//     Its up cannot finish on the KWOK test bed, because Gatekeeper's and External Secrets'
//     controllers and webhooks do not run there.
//   - dev at scale (environments/dev with 60 more teams, over 1,000 resources): preview on an empty
//     cluster, first up, and a no-op preview.
//   - dev: up, then previews with and without the policy packs (alternating, median of 7: the
//     packs' overhead), then destroy.
func BenchmarkPlatformComposed(b *testing.B) {
	for _, run := range []struct {
		name string
		f    func(b *testing.B, ctx context.Context, c *testbed.Cluster, dir string)
	}{{"prod", benchProd}, {"scaled", benchScaled}, {"dev", benchDev}} {
		b.Run(run.name, func(b *testing.B) {
			ctx := context.Background()
			c, err := testbed.Start(ctx, "stack", filepath.Join(b.TempDir(), "cluster"), testbed.Options{Nodes: 2})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Stop()
			if err := testbed.InstallVelero(ctx, c); err != nil {
				b.Fatal(err)
			}
			run.f(b, ctx, c, b.TempDir())
		})
	}
}

func open(b *testing.B, ctx context.Context, stack string, cfg auto.ConfigMap, dir string) *automation.Stack {
	s, err := automation.Open(ctx, automation.Options{Project: platform.Project, Stack: stack, Program: platform.Program, Config: cfg, StateDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchProd(b *testing.B, ctx context.Context, c *testbed.Cluster, dir string) {
	s := open(b, ctx, "prod", environment(b, "prod", c.Kubeconfig), dir)
	var r auto.PreviewResult
	timeIt(b, "preview, composed prod, empty cluster", "s/prod-preview", func() (err error) { r, err = s.Preview(ctx); return err })
	report(b, float64(created(r)), "resources/prod", "resources of the composed prod environment")
}

func benchScaled(b *testing.B, ctx context.Context, c *testbed.Cluster, dir string) {
	cfg := environment(b, "dev", c.Kubeconfig)
	scaled(b, cfg, 60)
	s := open(b, ctx, "scaled", cfg, dir)
	var r auto.PreviewResult
	timeIt(b, "preview, dev + 60 teams, empty cluster", "s/scaled-preview", func() (err error) { r, err = s.Preview(ctx); return err })
	report(b, float64(created(r)), "resources/scaled", "resources of dev + 60 teams")
	timeIt(b, "up, dev + 60 teams, first", "s/scaled-up", func() error { _, err := s.Up(ctx); return err })
	timeIt(b, "preview, dev + 60 teams, nothing to change", "s/scaled-noop", func() error { _, err := s.Preview(ctx); return err })
	timeIt(b, "destroy, dev + 60 teams", "s/scaled-destroy", func() error { _, err := s.Destroy(ctx); return err })
}

func benchDev(b *testing.B, ctx context.Context, c *testbed.Cluster, dir string) {
	s := open(b, ctx, "dev", environment(b, "dev", c.Kubeconfig), dir)
	timeIt(b, "up, composed dev, first", "s/up-create", func() error { _, err := s.Up(ctx); return err })
	timeIt(b, "up, composed dev, nothing to change", "s/up-warm", func() error { _, err := s.Up(ctx); return err })
	packs, err := exec.Command("make", "-s", "-C", "../..", "policy-packs").Output()
	if err != nil {
		b.Fatal(err)
	}
	withPacks := optpreview.PolicyPacks(strings.Fields(string(packs))...)
	preview := func(opts ...optpreview.Option) float64 {
		start := time.Now()
		if _, err := s.Preview(ctx, opts...); err != nil {
			b.Fatal(err)
		}
		return time.Since(start).Seconds()
	}
	preview()
	var without, with []float64
	for range 7 {
		without = append(without, preview())
		with = append(with, preview(withPacks))
	}
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	report(b, median(without), "s/preview", "preview, composed dev, nothing to change (median of 7)")
	report(b, median(with), "s/preview-packs", "same, with the policy packs (median of 7, alternating)")
	report(b, 100*(median(with)-median(without))/median(without), "%/pack-overhead", "preview time added by the policy packs")
	timeIt(b, "destroy, composed dev", "s/destroy", func() error { _, err := s.Destroy(ctx); return err })
}
