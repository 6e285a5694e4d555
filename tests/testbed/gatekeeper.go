package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/kplane/kplane/tests/testbed/pki"
)

// Gatekeeper is the real Gatekeeper manager (from the tool cache) run against a test-bed
// cluster: the chart's Deployment is only faked by KWOK, so this process plays its pod, with
// the admission webhook served on loopback under a certificate for 127.0.0.1.
type Gatekeeper struct {
	// Addr is the webhook's host:port (the chart's validatingWebhookURL).
	Addr string
	// CA is the PEM certificate the API server must trust for the webhook (its caBundle).
	CA []byte
	// Log is the manager's log file (its latest start's).
	Log string
	// Starts counts the manager's starts (more than one: it exited before it was ready).
	Starts int

	dir, health string
	prometheus  int // the metrics exporter's port (8888 unless moved: managers started side by side)
	*proc
}

// NewGatekeeper prepares a manager in dir: free loopback ports and a serving certificate.
func NewGatekeeper(dir string) (*Gatekeeper, error) {
	ports, err := freePort(3)
	if err != nil {
		return nil, err
	}
	ca, err := pki.Issue("kplane test webhook CA", nil, true, nil)
	if err != nil {
		return nil, err
	}
	serving, err := pki.Issue("gatekeeper-webhook", nil, false, ca, net.ParseIP("127.0.0.1"))
	if err != nil {
		return nil, err
	}
	key, err := serving.KeyPEM()
	if err != nil {
		return nil, err
	}
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(certs, "tls.crt"), serving.PEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(certs, "tls.key"), key, 0o600); err != nil {
		return nil, err
	}
	return &Gatekeeper{
		Addr: fmt.Sprintf("127.0.0.1:%d", ports), CA: ca.PEM, Log: filepath.Join(dir, "gatekeeper.log"),
		dir: dir, health: fmt.Sprintf("127.0.0.1:%d", ports+1), prometheus: ports + 2,
	}, nil
}

// Start runs the manager against c as pod podName of namespace (its status objects are owned
// by that pod) with the chart's operations (webhook, audit, status, generate) and waits until it
// is ready. auditInterval is in seconds. The manager exits when one of the chart's CRDs is not
// there yet (Pulumi creates a chart's objects at once); as the kubelet restarts its pod, it is
// started again then, up to five times.
func (g *Gatekeeper) Start(ctx context.Context, c *Cluster, namespace, podName string, auditInterval int) error {
	bin, err := Binary("gatekeeper")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(g.dir, "audit"), 0o700); err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(g.Addr)
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(bin, "--host=127.0.0.1", "--port="+port, "--cert-dir="+filepath.Join(g.dir, "certs"), "--disable-cert-rotation", "--api-cache-dir="+filepath.Join(g.dir, "audit"),
			"--health-addr="+g.health, "--metrics-addr=0", fmt.Sprintf("--prometheus-port=%d", g.prometheus), "--shutdown-delay=0", fmt.Sprintf("--audit-interval=%d", auditInterval),
			"--operation=webhook", "--operation=audit", "--operation=status", "--operation=generate", "--log-denies")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "POD_NAMESPACE="+namespace, "POD_NAME="+podName)
		if g.proc, err = startProc("gatekeeper", g.Log, cmd, false); err != nil {
			return err
		}
		g.Starts = attempt
		err = g.waitReady(ctx, 5*time.Minute, 200*time.Millisecond, httpOK(http.DefaultClient, "http://"+g.health+"/readyz"))
		if err == nil || attempt == 5 || !errors.Is(err, errExited) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}

// Stop terminates the manager (SIGTERM, killed after 10 s).
func (g *Gatekeeper) Stop() { g.terminate(10 * time.Second) }
