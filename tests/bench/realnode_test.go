package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplane/kplane/internal/images"
	"github.com/kplane/kplane/tests/testbed"
)

// BenchmarkRealNode: a control plane with one real node (containerd, runc, CNI, kubelet,
// kube-proxy) and the cluster DNS: time to a Ready node, to the DNS Ready, a pod's start (created
// to Ready, 10 pods at once), and the memory of the node with its DNS pod.
func BenchmarkRealNode(b *testing.B) {
	ctx := context.Background()
	start := time.Now()
	c, err := testbed.Start(ctx, "bench-real", filepath.Join(b.TempDir(), "c"), testbed.Options{RealNodes: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Delete()
	report(b, c.ReadyIn.Seconds(), "s/node-ready", "control plane and a real node Ready (first start)")
	report(b, time.Since(start).Seconds(), "s/dns-ready", "... and the cluster DNS (CoreDNS) Ready, images imported")

	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	echo, err := images.Build(ctx, root, images.Image{Name: "echo", Package: "./tests/testbed/echo"})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.ImportImages(ctx, map[string]v1.Image{"kplane.local/echo:bench": echo}); err != nil {
		b.Fatal(err)
	}
	cs, err := c.Clientset()
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		} else if time.Now().After(deadline) {
			b.Fatal(err)
		}
	}
	const pods = 10
	created := map[string]time.Time{}
	for i := range pods {
		name := fmt.Sprintf("echo-%d", i)
		created[name] = time.Now()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, testbed.RestrictedPod(name, "kplane.local/echo:bench", "serve", ":8080"), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	var took []float64
	for deadline := time.Now().Add(120 * time.Second); len(took) < pods; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d pods Ready in 120 s", len(took), pods)
		}
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, p := range list.Items {
			if at, ok := created[p.Name]; ok && testbed.PodReady(&p) {
				took = append(took, time.Since(at).Seconds())
				delete(created, p.Name)
			}
		}
	}
	slices.Sort(took)
	report(b, took[pods/2], "s/pod-start-p50", "a pod's start, created to Ready (10 at once on one node): median")
	report(b, took[pods-1], "s/pod-start-max", "... slowest")
	report(b, float64(nodeRSS(c))/(1<<20), "MiB/node", "RSS of the real node: containerd, kubelet, kube-proxy, shims, CoreDNS and the 10 pods")
}

// nodeRSS sums the resident memory of every process in the cluster's real nodes' cgroups.
func nodeRSS(c *testbed.Cluster) int64 {
	slots, _ := os.ReadFile(filepath.Join(c.Dir, "nodes", "slots"))
	var total int64
	for _, k := range strings.Fields(string(slots)) {
		_ = filepath.WalkDir("/sys/fs/cgroup/pids/kplane-n"+k, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.Name() != "cgroup.procs" {
				return nil
			}
			raw, _ := os.ReadFile(p)
			for _, pid := range strings.Fields(string(raw)) {
				status, _ := os.ReadFile("/proc/" + pid + "/status")
				for _, line := range strings.Split(string(status), "\n") {
					if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
						kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
						total += kb << 10
					}
				}
			}
			return nil
		})
	}
	return total
}
