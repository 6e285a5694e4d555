package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Velero is a real Velero server (the tool cache's build, with velero-plugin-for-aws) running
// as a local process against a cluster, as its Deployment would: Velero's CRDs installed from
// the same binary, its namespace and Deployment object present (restores consult it), the
// server's controllers reconciling the cluster's Velero objects.
type Velero struct {
	Namespace string
	Log       string
	*proc
}

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
	for _, args := range [][]string{{"create", "namespace", "velero"}, {"-n", "velero", "create", "deployment", "velero", "--image=velero/velero:" + tag}} {
		if err := c.kubectl(ctx, nil, args...); err != nil && !strings.Contains(err.Error(), "AlreadyExists") && !strings.Contains(err.Error(), "already exists") {
			return err
		}
	}
	return nil
}

// StartVelero installs Velero into c (InstallVelero) and starts its server there (dir holds the
// plugin folder and the log). Storage locations are the caller's. One server at a time: Velero
// binds the controller manager's metrics port (8080) without a flag to move it.
func StartVelero(ctx context.Context, c *Cluster, dir string) (*Velero, error) {
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
	v := &Velero{Namespace: "velero", Log: filepath.Join(dir, "velero.log")}
	cmd := exec.Command(bin, "server", "--kubeconfig", c.Kubeconfig, "--namespace", v.Namespace, "--plugin-dir", plugins,
		"--metrics-address", "127.0.0.1:0", "--profiler-address", "127.0.0.1:0",
		// Tests do not wait minutes: validate locations and sync backups from them every 2 s.
		"--store-validation-frequency", "2s", "--backup-sync-period", "2s")
	cmd.Dir = dir
	if v.proc, err = startProc("velero server", v.Log, cmd, false); err != nil {
		return nil, err
	}
	if err := v.waitReady(ctx, 60*time.Second, 200*time.Millisecond, func() (bool, error) { return logHas(v.Log, "Server starting..."), nil }); err != nil {
		return nil, err
	}
	return v, nil
}

// Stop kills the server.
func (v *Velero) Stop() { v.stop() }

// LastLines is the end of a service's log, for failure messages.
func LastLines(path string, n int) string { return lastLines(path, n) }
