// Package bench measures the foundation: control-plane start, memory per cluster, stack
// preview/up times and tool-cache build times. `make bench` prints the numbers; nothing here
// asserts on time.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/tests/testbed"
)

func report(b *testing.B, value float64, unit, what string) {
	b.ReportMetric(value, unit)
	fmt.Printf("  %-52s %10.2f %s\n", what, value, unit)
}

// timeIt runs f and reports how long it took.
func timeIt(b *testing.B, what, unit string, f func() error) {
	start := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	report(b, time.Since(start).Seconds(), unit, what)
}

// BenchmarkControlPlane: start to /readyz on a fresh data directory (PKI, etcd bootstrap),
// restart on existing data, and resident memory of one idle cluster and of three at once.
func BenchmarkControlPlane(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	c, err := testbed.Start(ctx, "bench", filepath.Join(dir, "bench"), testbed.Options{Nodes: 2, Durable: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	report(b, c.ReadyIn.Seconds(), "s/first-start", "control plane first start to ready (new PKI + etcd)")
	if err := c.Stop(); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	const restarts = 3
	for i := 0; i < restarts; i++ {
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		total += c.ReadyIn
		if i < restarts-1 {
			_ = c.Stop()
		}
	}
	report(b, (total / restarts).Seconds(), "s/restart", "control plane restart to ready (mean of 3)")
	time.Sleep(10 * time.Second) // let controllers settle before measuring memory
	report(b, float64(c.RSS())/(1<<20), "MiB/cluster", "RSS of one idle cluster (kcp + kwok, 2 nodes)")

	others := make([]*testbed.Cluster, 2)
	for i := range others {
		others[i], err = testbed.Start(ctx, fmt.Sprintf("b%d", i), filepath.Join(dir, fmt.Sprintf("b%d", i)), testbed.Options{Nodes: 2})
		if err != nil {
			b.Fatal(err)
		}
		defer others[i].Stop()
	}
	time.Sleep(10 * time.Second)
	sum := c.RSS() + others[0].RSS() + others[1].RSS()
	report(b, float64(sum)/(1<<20), "MiB/3-clusters", "RSS of three idle clusters together")
}

// BenchmarkToolCache: warm `make tools` (everything cached) and the cold build times recorded
// in the cache when each tool was first built on this machine.
func BenchmarkToolCache(b *testing.B) {
	start := time.Now()
	out, err := exec.Command("bash", "../../tools/build.sh").CombinedOutput()
	if err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	report(b, time.Since(start).Seconds(), "s/tools-warm", "make tools, warm (all cached)")
	cache := os.Getenv("KPLANE_CACHE")
	if cache == "" {
		cache = filepath.Join(os.Getenv("HOME"), ".cache", "kplane")
	}
	f, err := os.Open(filepath.Join(cache, "build-times.log"))
	if err != nil {
		return
	}
	defer f.Close()
	cold := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() { // "<tool> <seconds>": keep the longest, i.e. the cold build
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && longer(fields[1], cold[fields[0]]) {
			cold[fields[0]] = fields[1]
		}
	}
	for _, tool := range []string{"pulumi", "pulumi-resource-kubernetes", "kcp", "kwok"} {
		if v, ok := cold[tool]; ok {
			var secs float64
			fmt.Sscan(v, &secs)
			report(b, secs, "s/build-"+tool, "longest recorded build of "+tool+" (cold if the cache started empty)")
		}
	}
}

func longer(a, b string) bool {
	var x, y float64
	fmt.Sscan(a, &x)
	fmt.Sscan(b, &y)
	return x > y
}

// pinnedModule is the folder of module at the version tools/versions.sh pins under key, in the
// Go module cache (downloaded if missing): upstream charts and CRDs come from there, offline.
func pinnedModule(b *testing.B, key, module string) string {
	v, err := testbed.PinnedVersion(key)
	if err != nil {
		b.Fatal(err)
	}
	dir, err := testbed.ModuleDir(module + "@" + v)
	if err != nil {
		b.Fatal(err)
	}
	return dir
}
