package testbed

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartSnapshotController runs the CSI snapshot controller (external-snapshotter's common
// controller, from the tool cache) against c until the test ends: it makes a
// VolumeSnapshotContent for each new VolumeSnapshot from its class (driver, deletionPolicy),
// binds them, carries the content's status to the snapshot, and on a snapshot's deletion deletes
// its content when the content's policy is Delete, or leaves it when Retain. No CSI driver or
// its snapshotter sidecar runs here: a test plays the sidecar's part (the content's status).
// The CSI snapshot CRDs must be installed (not the group snapshot ones: that feature is off).
func StartSnapshotController(t testing.TB, c *Cluster) {
	t.Helper()
	bin, err := Binary("snapshot-controller")
	if err != nil {
		t.Fatal(err)
	}
	port, err := freePort(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--kubeconfig="+c.Kubeconfig, "--leader-election=false", "--resync-period=10s",
		"--retry-interval-max=5s", "--feature-gates=CSIVolumeGroupSnapshot=false", fmt.Sprintf("--http-endpoint=127.0.0.1:%d", port), "--v=3")
	p, err := startProc("snapshot-controller", filepath.Join(dir, "snapshot-controller.log"), cmd, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	client := &http.Client{Timeout: 2 * time.Second}
	err = p.waitReady(context.Background(), 60*time.Second, 200*time.Millisecond, httpOK(client, fmt.Sprintf("http://127.0.0.1:%d/metrics", port)))
	if err != nil {
		t.Fatal(err)
	}
}
