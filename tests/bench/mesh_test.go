package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/mesh"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/tests/testbed"
)

// BenchmarkMesh: a mesh of 200 services (20 teams of 10; each service called by the one before
// it and by a service of the previous team; every other service canaried 90/10 with a header
// route, retries, a timeout and a circuit breaker) on Istio's charts, against a local cluster:
// preview on the empty cluster, the first up, a preview with nothing to change, destroy.
func BenchmarkMesh(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	c, err := testbed.Start(ctx, "mesh", filepath.Join(dir, "mesh"), testbed.Options{Nodes: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	args := meshOf(b, 20, 10)
	s, err := automation.Open(ctx, automation.Options{Project: "kplane-bench", Stack: "mesh", StateDir: dir, Program: func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		_, err = mesh.NewMesh(ctx, "mesh", &args, pulumi.Provider(k8s))
		return err
	}})
	if err != nil {
		b.Fatal(err)
	}
	since := time.Now()
	timeIt(b, "pulumi preview, mesh of 200 services, empty cluster", "s/preview-empty", func() error { _, err := s.Preview(ctx); return err })
	apiProfile(b, c.Dir, since, time.Now())
	var created int
	timeIt(b, "pulumi up, mesh of 200 services, first (creates all)", "s/up-create", func() error {
		res, err := s.Up(ctx)
		if err == nil {
			created = (*res.Summary.ResourceChanges)["create"]
		}
		return err
	})
	report(b, float64(created), "resources", "resources created (charts' objects and Istio objects)")
	since = time.Now()
	timeIt(b, "pulumi preview, mesh of 200 services, nothing to change", "s/preview-warm", func() error { _, err := s.Preview(ctx); return err })
	apiProfile(b, c.Dir, since, time.Now())
	timeIt(b, "pulumi destroy, mesh of 200 services", "s/destroy", func() error { _, err := s.Destroy(ctx); return err })
}

// meshOf is a mesh of teams × per services on Istio's charts from the istio.io/istio module.
func meshOf(b *testing.B, teams, per int) mesh.Args {
	charts := filepath.Join(pinnedModule(b, "ISTIO_VERSION", "istio.io/istio"), "manifests", "charts")
	digest := "@sha256:" + strings.Repeat("c", 64)
	a := mesh.Args{
		BaseChart: addon.Chart{Path: filepath.Join(charts, "base")},
		CNIChart:  addon.Chart{Path: filepath.Join(charts, "istio-cni")},
		CNI:       mesh.CNI{Image: "registry.example.com/istio/install-cni" + digest},
		Revisions: []mesh.Revision{{Name: "bench", PilotImage: "registry.example.com/istio/pilot" + digest, ProxyImage: "registry.example.com/istio/proxyv2" + digest,
			Chart: addon.Chart{Path: filepath.Join(charts, "istio-control", "istio-discovery")}}},
	}
	for t := 0; t < teams; t++ {
		team := mesh.Team{Namespace: fmt.Sprintf("team-%02d", t)}
		for i := 0; i < per; i++ {
			svc := mesh.Service{Name: fmt.Sprintf("svc-%02d", i)}
			if i > 0 {
				svc.Callers = append(svc.Callers, fmt.Sprintf("svc-%02d", i-1))
			}
			if t > 0 {
				svc.Callers = append(svc.Callers, fmt.Sprintf("team-%02d/svc-%02d", t-1, i))
			}
			if i%2 == 0 {
				svc.Route = &mesh.Route{
					Subsets:        []mesh.Subset{{Name: "stable", Labels: map[string]string{"version": "v1"}}, {Name: "canary", Labels: map[string]string{"version": "v2"}}},
					Weights:        []mesh.Weight{{Subset: "stable", Percent: 90}, {Subset: "canary", Percent: 10}},
					HeaderRoutes:   []mesh.HeaderRoute{{Header: "x-canary", Exact: "1", Subset: "canary"}},
					Timeout:        "5s",
					Retries:        &mesh.Retries{Attempts: 2},
					CircuitBreaker: &mesh.CircuitBreaker{Consecutive5xx: 5},
				}
			}
			team.Services = append(team.Services, svc)
		}
		a.Teams = append(a.Teams, team)
	}
	if err := a.Validate(); err != nil {
		b.Fatal(err)
	}
	return a
}
