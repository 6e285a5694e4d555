package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// StartN starts n clusters in parallel, each in its own temporary directory, and stops them
// when the test ends (and, through the parent-death signal, if the test binary dies).
func StartN(t testing.TB, n int, opts Options) []*Cluster {
	t.Helper()
	clusters := make([]*Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	base := t.TempDir()
	for i := range clusters {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("c%d", i)
			clusters[i], errs[i] = Start(context.Background(), name, filepath.Join(base, name), opts)
		}(i)
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range clusters {
			if c != nil {
				if err := c.Stop(); err != nil {
					t.Errorf("stop %s: %v", c.Name, err)
				}
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start cluster %d: %v", i, err)
		}
	}
	return clusters
}

// restConfig is the cluster's admin identity without client-side throttling (client-go's
// default is 5 requests/s): tests and benchmarks measure the server.
func (c *Cluster) restConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0
	return cfg, nil
}

// Dynamic returns a client for the cluster's admin identity, to assert on live objects.
func (c *Cluster) Dynamic() (dynamic.Interface, error) {
	cfg, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	return dynamic.NewForConfig(cfg)
}

// Clientset returns a typed client for the cluster's admin identity.
func (c *Cluster) Clientset() (kubernetes.Interface, error) {
	cfg, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// Apply applies the manifests in path to c (kubectl's server-side apply).
func (c *Cluster) Apply(ctx context.Context, path string) error {
	return c.kubectl(ctx, nil, "apply", "--server-side", "-f", path)
}

// kubectl runs the tool cache's kubectl against c (stdin may be nil); the error carries its output.
func (c *Cluster) kubectl(ctx context.Context, stdin io.Reader, args ...string) error {
	kubectl, err := Binary("kubectl")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out.String())
	}
	return nil
}
