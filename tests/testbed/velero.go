package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/kplane/kplane/components/backup"
)

// Velero is a real Velero server (the tool cache's build, with velero-plugin-for-aws) running
// as a local process against a cluster, as its Deployment would: Velero's CRDs installed from
// the same binary, its namespace and Deployment object present (restores consult it), the
// server's controllers reconciling the cluster's Velero objects.
type Velero struct {
	Namespace string
	Log       string
	*proc
	once sync.Once // releases oneVelero
}

// oneVelero: one test's Velero server at a time in this process (its controller manager binds
// port 8080, which no flag moves); parallel tests that run one take turns.
var oneVelero sync.Mutex

// InstallVelero puts into c what Velero's installation leaves there: its CRDs (from the same
// binary, established), its namespace and its Deployment object (restores consult it).
func InstallVelero(ctx context.Context, c *Cluster) error {
	bin, err := Binary("velero")
	if err != nil {
		return err
	}
	crds, err := exec.CommandContext(ctx, bin, "install", "--crds-only", "--dry-run", "-o", "yaml").Output()
	if err != nil {
		return fmt.Errorf("velero install --crds-only: %w", err)
	}
	if err := c.kubectl(ctx, bytes.NewReader(crds), "apply", "--server-side", "-f", "-"); err != nil {
		return fmt.Errorf("velero CRDs: %w", err)
	}
	// The server's informers give up on types not yet served.
	if err := c.kubectl(ctx, nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "component=velero"); err != nil {
		return fmt.Errorf("velero CRDs established: %w", err)
	}
	version, err := exec.CommandContext(ctx, bin, "version", "--client-only").Output()
	if err != nil {
		return fmt.Errorf("velero version: %w", err)
	}
	tag := "latest"
	if m := regexp.MustCompile(`Version: (v\S+)`).FindSubmatch(version); m != nil {
		tag = string(m[1])
	}
	for _, o := range []struct{ get, create []string }{
		{[]string{"get", "namespace", "velero"}, []string{"create", "namespace", "velero"}},
		{[]string{"-n", "velero", "get", "deployment", "velero"}, []string{"-n", "velero", "create", "deployment", "velero", "--image=velero/velero:" + tag}},
	} {
		// Looked up first: once the platform's admission policies hold the namespace, a second
		// create is refused by them before the API server finds the object exists.
		if c.kubectl(ctx, nil, o.get...) == nil {
			continue
		}
		if err := c.kubectl(ctx, nil, o.create...); err != nil {
			return err
		}
	}
	return nil
}

// StartVelero installs Velero into c (InstallVelero) and starts its server there (dir holds the
// plugin folder and the log). Storage locations are the caller's. One server at a time: Velero
// binds the controller manager's metrics port (8080) without a flag to move it, so a second
// StartVelero waits for the first server's Stop.
func StartVelero(ctx context.Context, c *Cluster, dir string) (*Velero, error) {
	return LaunchVelero(ctx, c, dir, false)
}

// LaunchVelero is StartVelero; a detached server outlives the process that started it (`make
// up`'s local Velero), and waits for its locations no faster than Velero's defaults.
func LaunchVelero(ctx context.Context, c *Cluster, dir string, detached bool) (v *Velero, err error) {
	if !detached {
		oneVelero.Lock()
		defer func() {
			if err != nil {
				oneVelero.Unlock()
			}
		}()
	}
	if err := InstallVelero(ctx, c); err != nil {
		return nil, err
	}
	bin, err := Binary("velero")
	if err != nil {
		return nil, err
	}
	plugin, err := Binary("velero-plugin-for-aws")
	if err != nil {
		return nil, err
	}
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o700); err != nil {
		return nil, err
	}
	if err := os.Symlink(plugin, filepath.Join(plugins, "velero-plugin-for-aws")); err != nil && !os.IsExist(err) {
		return nil, err
	}
	v = &Velero{Namespace: "velero", Log: filepath.Join(dir, "velero.log")}
	if detached {
		v.once.Do(func() {}) // holds no turn
	}
	// The client rate kplane's backup component gives Velero's chart.
	args := []string{"server", "--kubeconfig", c.Kubeconfig, "--namespace", v.Namespace, "--plugin-dir", plugins,
		"--metrics-address", "127.0.0.1:0", "--profiler-address", "127.0.0.1:0",
		fmt.Sprintf("--client-qps=%d", backup.DefaultClientQPS), fmt.Sprintf("--client-burst=%d", backup.DefaultClientBurst)}
	if !detached {
		// Tests do not wait minutes: validate locations and sync backups from them every 2 s.
		args = append(args, "--store-validation-frequency", "2s", "--backup-sync-period", "2s")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if v.proc, err = startProc("velero server", v.Log, cmd, detached); err != nil {
		return nil, err
	}
	if err = v.waitReady(ctx, 60*time.Second, 200*time.Millisecond, func() (bool, error) { return logHas(v.Log, "Server starting..."), nil }); err != nil {
		return nil, err
	}
	return v, nil
}

// Stop kills the server (and gives the next test its turn); PID is its process (a detached
// server's, for a later stop).
func (v *Velero) Stop() {
	v.stop()
	v.once.Do(oneVelero.Unlock)
}
func (v *Velero) PID() int { return v.pid() }

// LastLines is the end of a service's log, for failure messages.
func LastLines(path string, n int) string { return lastLines(path, n) }
