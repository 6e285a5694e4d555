package testbed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// PolicyControllerNamespace is where policy-controller's release runs.
const PolicyControllerNamespace = "cosign-system"

// policyControllerConfig are the files of policy-controller's release (config/ of its module)
// applied as they are: namespace, RBAC, CRDs, configuration and webhook configurations. Left out:
// the Deployment (this process plays its pod) and the Service (its selector finds no pod: the
// test bed makes one whose endpoint is this process).
var policyControllerConfig = []string{"100-namespace.yaml", "200-clusterrole.yaml", "200-role.yaml", "200-serviceaccount.yaml",
	"201-clusterrolebinding.yaml", "201-rolebinding.yaml", "300-clusterimagepolicy.yaml", "300-trustroot.yaml",
	"config-image-policies.yaml", "config-leader-election.yaml", "config-logging.yaml", "config-observability.yaml",
	"config-policy-controller.yaml", "config-sigstore-keys.yaml", "500-webhook-configuration.yaml", "501-policy-webhook-configurations.yaml"}

// StartPolicyController runs sigstore's policy-controller webhook (from the tool cache) against
// c as its release's pod would run, with the release's objects from moduleDir (the module
// github.com/sigstore/policy-controller at the pinned version). The API server reaches it the
// way it reaches a webhook pod, through its Service's endpoint, so c must be started with
// --enable-aggregator-routing=true; the endpoint is this machine's first non-loopback address,
// since Services may not point at loopback. Its own controller makes the serving certificate and
// injects it into the webhook configurations and the CRD's conversion. Stopped when the test ends.
func StartPolicyController(t testing.TB, c *Cluster, moduleDir string) {
	t.Helper()
	ctx := context.Background()
	for _, f := range policyControllerConfig {
		if err := c.Apply(ctx, filepath.Join(moduleDir, "config", f)); err != nil {
			t.Fatalf("policy-controller's %s: %v", f, err)
		}
	}
	ip, err := machineAddress()
	if err != nil {
		t.Fatal(err)
	}
	// The webhook serves on 8443 whatever --secure-port says: v0.13.1 parses that flag into a
	// copy of the options it has already put in its context.
	const port = 8443
	profiling, err := freePort(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := webhookEndpoint(ctx, c, ip, port); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(binary(t, "policy-controller"), "--disable-tuf")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "SYSTEM_NAMESPACE="+PolicyControllerNamespace, "CONFIG_LOGGING_NAME=config-logging", "METRICS_DOMAIN=sigstore.dev/policy",
		"WEBHOOK_NAME=webhook", "KUBERNETES_MIN_VERSION=1.21.0", "HOME="+dir, "POD_NAME=policy-controller-webhook-0", fmt.Sprintf("PROFILING_PORT=%d", profiling))
	p, err := startProc("policy-controller", filepath.Join(dir, "policy-controller.log"), cmd, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.terminate(10 * time.Second) })
	// The readiness probe of the release's Deployment: HTTPS on the webhook port with the
	// kubelet's header. Like the kubelet's HTTPS probes, it asks only whether the server answers
	// and does not verify its certificate (test bed only: the API server, which sends the
	// admission requests, verifies it against the CA the controller injected).
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a readiness probe, as the kubelet's
	var last string
	err = p.waitReady(ctx, 2*time.Minute, 250*time.Millisecond, func() (bool, error) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://%s:%d/", ip, port), nil)
		req.Header.Set("K-Kubelet-Probe", "webhook")
		resp, err := probe.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("%v\nthe last readiness probe: %s", err, last)
	}
	if err := p.waitReady(ctx, time.Minute, 250*time.Millisecond, func() (bool, error) { return webhooksConfigured(ctx, c) }); err != nil {
		t.Fatal(err)
	}
}

// webhookEndpoint is the release's Service, without a selector, and its endpoint ip:port.
func webhookEndpoint(ctx context.Context, c *Cluster, ip string, port int) error {
	cs, err := c.Clientset()
	if err != nil {
		return err
	}
	meta := metav1.ObjectMeta{Name: "webhook", Namespace: PolicyControllerNamespace}
	svc := &corev1.Service{ObjectMeta: meta, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromInt32(int32(port))}}}}
	if _, err := cs.CoreV1().Services(meta.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return err
	}
	ep := &corev1.Endpoints{ObjectMeta: meta, Subsets: []corev1.EndpointSubset{{ //nolint:staticcheck // mirrored into an EndpointSlice by the controller manager
		Addresses: []corev1.EndpointAddress{{IP: ip}}, Ports: []corev1.EndpointPort{{Port: int32(port)}}}}}
	_, err = cs.CoreV1().Endpoints(meta.Namespace).Create(ctx, ep, metav1.CreateOptions{}) //nolint:staticcheck // as above
	return err
}

// webhooksConfigured: policy-controller's controller has given its admission webhooks their
// CA and rules.
func webhooksConfigured(ctx context.Context, c *Cluster) (bool, error) {
	cs, err := c.Clientset()
	if err != nil {
		return false, err
	}
	v, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "policy.sigstore.dev", metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	m, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "policy.sigstore.dev", metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	return len(v.Webhooks[0].ClientConfig.CABundle) > 0 && len(v.Webhooks[0].Rules) > 0 &&
		len(m.Webhooks[0].ClientConfig.CABundle) > 0 && len(m.Webhooks[0].Rules) > 0, nil
}

// machineAddress is the first non-loopback, non-link-local IPv4 address of an interface that is up.
func machineAddress() (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, i := range ifaces {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String(), nil
			}
		}
	}
	return "", errors.New("this machine has no non-loopback IPv4 address for a webhook Service's endpoint")
}
