package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

const admissionRequests = 2000

// BenchmarkAdmission: latency of pod creates (server-side dry run: full admission, no storage)
// in one namespace of one cluster, without and then with the hardened-cluster baseline. The
// pods meet every policy, so every validation of every policy is evaluated.
func BenchmarkAdmission(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	c, err := testbed.Start(ctx, "adm", filepath.Join(dir, "adm"), testbed.Options{NoNodes: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	dc, err := c.Dynamic()
	if err != nil {
		b.Fatal(err)
	}
	var disabled []string // the policies switched off in the next up
	program := func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		_, err = hardenedcluster.NewHardenedCluster(ctx, "bench", &hardenedcluster.Args{
			Teams:     []hardenedcluster.Team{{Name: "bench", Namespaces: []string{"bench"}}},
			Admission: hardenedcluster.AdmissionArgs{AllowedRegistries: []string{"registry.example.com/"}, Disabled: disabled},
		}, pulumi.Providers(k8s))
		return err
	}
	s, err := automation.Open(ctx, automation.Options{Project: "kplane-bench", Stack: "adm", Program: program, StateDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	// Without policies: the namespace and RBAC only (every policy disabled).
	disabled = hardenedcluster.PolicyNames()
	if _, err := s.Up(ctx); err != nil {
		b.Fatal(err)
	}
	before := measure(b, dc)
	// With the baseline: every policy (the catalog, allowed namespaces and registries, digests).
	n := len(hardenedcluster.PolicyNames())
	disabled = nil
	start := time.Now()
	if _, err := s.Up(ctx); err != nil {
		b.Fatal(err)
	}
	report(b, time.Since(start).Seconds(), "s/up-policies", fmt.Sprintf("pulumi up adding the %d admission policies", n))
	waitEnforced(b, dc)
	after := measure(b, dc)
	report(b, ms(pct(before, 50)), "ms/p50-without", fmt.Sprintf("pod create p50, no policies (%d requests)", admissionRequests))
	report(b, ms(pct(before, 99)), "ms/p99-without", "pod create p99, no policies")
	report(b, ms(pct(after, 50)), "ms/p50-with", fmt.Sprintf("pod create p50, %d policies", n))
	report(b, ms(pct(after, 99)), "ms/p99-with", fmt.Sprintf("pod create p99, %d policies", n))
	report(b, ms(pct(after, 50)-pct(before, 50)), "ms/p50-added", "added by the baseline at p50")
	report(b, ms(pct(after, 99)-pct(before, 99)), "ms/p99-added", "added by the baseline at p99")
	start = time.Now()
	if _, err := s.Preview(ctx); err != nil {
		b.Fatal(err)
	}
	report(b, time.Since(start).Seconds(), "s/preview-component", "pulumi preview of the component (policies installed)")
	if _, err := s.Destroy(ctx); err != nil {
		b.Fatal(err)
	}
}

var podGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

func benchPod(i int) *unstructured.Unstructured {
	obj, _, _ := fixtures.Workload("Pod", "bench", fmt.Sprintf("p%d", i), rules.GoodPodSpec())
	return &unstructured.Unstructured{Object: obj}
}

// measure times admissionRequests server-side dry-run pod creates, after 100 unmeasured ones.
func measure(b *testing.B, dc dynamic.Interface) []time.Duration {
	ctx := context.Background()
	pods := dc.Resource(podGVR).Namespace("bench")
	dryRun := metav1.CreateOptions{DryRun: []string{"All"}}
	out := make([]time.Duration, 0, admissionRequests)
	for i := 0; i < admissionRequests+100; i++ {
		start := time.Now()
		if _, err := pods.Create(ctx, benchPod(i), dryRun); err != nil {
			b.Fatalf("pod create %d: %v", i, err)
		}
		if i >= 100 {
			out = append(out, time.Since(start))
		}
	}
	return out
}

// waitEnforced returns once the policies are in force (the API server's policy informer has them).
func waitEnforced(b *testing.B, dc dynamic.Interface) {
	bad := benchPod(0)
	containers, _, _ := unstructured.NestedSlice(bad.Object, "spec", "containers")
	containers[0].(map[string]any)["image"] = "registry.example.com/app:latest"
	_ = unstructured.SetNestedSlice(bad.Object, containers, "spec", "containers")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, err := dc.Resource(podGVR).Namespace("bench").Create(context.Background(), bad, metav1.CreateOptions{DryRun: []string{"All"}})
		if err != nil && strings.Contains(err.Error(), "kplane-image-digest") {
			time.Sleep(2 * time.Second) // the other policies were created in the same up
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatal("admission policies not in force after 30s")
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
