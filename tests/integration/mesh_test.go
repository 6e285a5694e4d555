package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sclient "k8s.io/client-go/kubernetes"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/mesh"
	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/pki"
)

// meshArgs is a mesh on Istio's own charts (from the istio.io/istio module: the official
// repository cannot be reached here) with a plugged-in CA, an ingress gateway and two teams
// using every routing feature.
func meshArgs(t *testing.T, ca *mesh.SecretCA) mesh.Args {
	charts := filepath.Join(moduleDir(t, "istio.io/istio@"+pinned(t, "ISTIO_VERSION")), "manifests", "charts")
	return mesh.Args{
		BaseChart: addon.Chart{Path: filepath.Join(charts, "base")},
		CNIChart:  addon.Chart{Path: filepath.Join(charts, "istio-cni")},
		CNI:       mesh.CNI{Image: "registry.example.com/istio/install-cni" + rules.Digest},
		Revisions: []mesh.Revision{{Name: "1-29-2", PilotImage: "registry.example.com/istio/pilot" + rules.Digest,
			ProxyImage: "registry.example.com/istio/proxyv2" + rules.Digest, Chart: addon.Chart{Path: filepath.Join(charts, "istio-control", "istio-discovery")}}},
		// The gateway's pods get their proxy from istiod's injection webhook, which cannot run
		// here: its Deployment is applied without waiting for pods.
		Gateways: []mesh.Gateway{{Name: "ingress", Namespace: "istio-ingress", Chart: addon.Chart{Path: filepath.Join(charts, "gateway")},
			Values: map[string]any{"annotations": map[string]any{"pulumi.com/skipAwait": "true"}}}},
		Certificates: mesh.Certificates{CA: &mesh.CA{Secret: ca}},
		Teams: []mesh.Team{{Namespace: "mesh-shop", Services: []mesh.Service{
			{Name: "web", Callers: []string{"gateway/ingress"}, Route: &mesh.Route{Timeout: "5s", Retries: &mesh.Retries{Attempts: 3, PerTryTimeout: "1s"}}},
			{Name: "cart", Callers: []string{"web", "mesh-payments/checkout"}, Route: &mesh.Route{
				Subsets:        []mesh.Subset{{Name: "stable", Labels: map[string]string{"version": "v1"}}, {Name: "canary", Labels: map[string]string{"version": "v2"}}},
				Weights:        []mesh.Weight{{Subset: "stable", Percent: 90}, {Subset: "canary", Percent: 10}},
				HeaderRoutes:   []mesh.HeaderRoute{{Header: "x-canary", Exact: "always", Subset: "canary"}},
				CircuitBreaker: &mesh.CircuitBreaker{MaxConnections: 100, MaxPendingRequests: 10, Consecutive5xx: 5},
				Fault:          &mesh.Fault{AbortPercent: 0.5, AbortStatus: 503},
				Mirror:         &mesh.Mirror{Subset: "canary", Percent: 5},
			}},
		}}, {Namespace: "mesh-payments", Existing: true, Services: []mesh.Service{{Name: "checkout", Callers: []string{"mesh-shop/cart"}}}}},
	}
}

// TestMesh: `pulumi preview` on an empty cluster, then `pulumi up` of the mesh against a real API
// server: Istio's CRDs from its base chart, istiod by revision with the tag, the CNI agent, the
// gateway, the plugged-in CA and every team object accepted; `istioctl analyze` of the live
// cluster (with the teams' Services and Deployments) finds no errors; a broken argument is
// refused before anything is created; `pulumi destroy` leaves no Istio object.
func TestMesh(t *testing.T) {
	integration(t)
	ctx := context.Background()
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	cs, err := c.Clientset()
	require.NoError(t, err)
	dyn, err := c.Dynamic()
	require.NoError(t, err)
	// The payments team's namespace exists already (as the hardened cluster makes team namespaces).
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mesh-payments",
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	args := meshArgs(t, testCA(t))
	s := openStack(t, "mesh", func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		_, err = mesh.NewMesh(ctx, "mesh", &args, pulumi.Provider(k8s))
		return err
	}, nil, t.TempDir())

	// A broken argument: refused by preview, nothing created.
	good := args
	broken := meshArgs(t, testCA(t))
	broken.Teams[0].Services[1].Route.Weights[1].Percent = 20
	args = broken
	_, err = s.Preview(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "teams[0].services[1].route.weights: they sum to 110; make them sum to 100")
	args = good

	start := time.Now()
	prev, err := s.Preview(ctx, optpreview.Diff())
	require.NoError(t, err, "preview on an empty cluster (the CRDs come with the stack)")
	t.Logf("preview on an empty cluster: %.1f s, %d to create", time.Since(start).Seconds(), prev.ChangeSummary["create"])
	start = time.Now()
	up, err := s.Up(ctx)
	require.NoError(t, err)
	t.Logf("pulumi up: %.1f s, %d resources", time.Since(start).Seconds(), (*up.Summary.ResourceChanges)["create"])

	for _, o := range []struct {
		gvr      schema.GroupVersionResource
		ns, name string
	}{
		{istioGVR("security.istio.io", "peerauthentications"), mesh.SystemNamespace, "default"},
		{istioGVR("security.istio.io", "authorizationpolicies"), "mesh-shop", "deny-by-default"},
		{istioGVR("security.istio.io", "authorizationpolicies"), "mesh-shop", "allow-cart"},
		{istioGVR("networking.istio.io", "virtualservices"), "mesh-shop", "cart"},
		{istioGVR("networking.istio.io", "destinationrules"), "mesh-shop", "cart"},
		{istioGVR("networking.istio.io", "destinationrules"), "mesh-payments", "default-mtls"},
		{gvrDeployment, mesh.SystemNamespace, "istiod-1-29-2"},
		{gvrDeployment, "istio-ingress", "ingress"},
	} {
		get(t, dyn, o.gvr, o.ns, o.name)
	}
	cacerts, err := cs.CoreV1().Secrets(mesh.SystemNamespace).Get(ctx, "cacerts", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Contains(t, string(cacerts.Data["ca-key.pem"]), "PRIVATE KEY")
	shopNS, err := cs.CoreV1().Namespaces().Get(ctx, "mesh-shop", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "stable", shopNS.Labels["istio.io/rev"])
	payNS, err := cs.CoreV1().Namespaces().Get(ctx, "mesh-payments", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "stable", payNS.Labels["istio.io/rev"], "an existing namespace is labelled")
	assert.Equal(t, "restricted", payNS.Labels["pod-security.kubernetes.io/enforce"], "and keeps its own labels")
	hooks, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var tagHook bool
	for _, h := range hooks.Items {
		tagHook = tagHook || strings.Contains(h.Name, "stable")
	}
	assert.True(t, tagHook, "the tag's injection webhook exists (namespaces labelled istio.io/rev=stable get the stable revision's sidecars)")

	// The teams' workloads, as their own stacks would declare them; then Istio's analyzers.
	meshApps(t, ctx, cs)
	analyze := exec.CommandContext(ctx, "istioctl", "analyze", "-A", "--kubeconfig", c.Kubeconfig, "--failure-threshold", "Error", "--output-threshold", "Info")
	out, err := analyze.CombinedOutput()
	t.Logf("istioctl analyze -A:\n%s", out)
	require.NoError(t, err, "istioctl analyze reports errors")
	assert.NotContains(t, string(out), "Error [")
	// The only warnings are those of pods without proxies (no workload "in the mesh" for the
	// policies and the namespace-wide rule; the gateway's injection by its tag is not traced).
	for _, line := range strings.Split(string(out), "\n") {
		if code, ok := strings.CutPrefix(strings.TrimSpace(line), "Warning ["); ok {
			assert.Contains(t, []string{"IST0127", "IST0146", "IST0174"}, code[:7], "unexpected warning: %s", line)
		}
	}

	// The CA from cert-manager instead (its CRDs as upstream ships them): the intermediate's
	// Certificate writes istio-system/cacerts, which replaces the secret given before.
	upstreamCRD(t, c, "github.com/cert-manager/cert-manager@"+pinned(t, "CERT_MANAGER_VERSION"), "deploy/crds/cert-manager.io_certificates.yaml")
	args.Certificates.CA = &mesh.CA{CertManager: &mesh.CertManagerCA{IssuerName: "platform-root"}}
	_, err = s.Up(ctx)
	require.NoError(t, err)
	certificate := get(t, dyn, schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}, mesh.SystemNamespace, "istio-intermediate")
	assert.Equal(t, "cacerts", str(certificate, "spec", "secretName"))
	assert.Equal(t, "ClusterIssuer", str(certificate, "spec", "issuerRef", "kind"))
	_, err = cs.CoreV1().Secrets(mesh.SystemNamespace).Get(ctx, "cacerts", metav1.GetOptions{})
	assert.Error(t, err, "the secret-held CA is gone (cert-manager writes cacerts now)")

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	_, err = dyn.Resource(istioGVR("networking.istio.io", "virtualservices")).Namespace("mesh-shop").Get(ctx, "cart", metav1.GetOptions{})
	assert.Error(t, err, "destroyed")
	payNS, err = cs.CoreV1().Namespaces().Get(ctx, "mesh-payments", metav1.GetOptions{})
	require.NoError(t, err, "an existing namespace outlives the mesh")
	assert.NotContains(t, payNS.Labels, "istio.io/rev", "without the mesh's label")
	assert.Equal(t, "restricted", payNS.Labels["pod-security.kubernetes.io/enforce"])
}

func istioGVR(group, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: "v1", Resource: resource}
}

// meshApps: Services and Deployments of web, cart (v1 and v2) and checkout, each with its
// ServiceAccount, one pod each (KWOK runs them). The pods opt out of injection: istiod, which
// would inject their proxies, cannot run here, and its webhook fails closed; the analyzers
// then check the routing and policies against real pods.
func meshApps(t *testing.T, ctx context.Context, cs k8sclient.Interface) {
	t.Helper()
	for _, app := range []struct{ ns, name string }{{"mesh-shop", "web"}, {"mesh-shop", "cart"}, {"mesh-payments", "checkout"}} {
		_, err := cs.CoreV1().ServiceAccounts(app.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: app.name}}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cs.CoreV1().Services(app.ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: app.name}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app.name}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{})
		require.NoError(t, err)
		versions := []string{"v1"}
		if app.name == "cart" {
			versions = append(versions, "v2")
		}
		for _, v := range versions {
			labels := map[string]string{"app": app.name, "version": v, "sidecar.istio.io/inject": "false"}
			replicas := int32(1)
			_, err = cs.AppsV1().Deployments(app.ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: app.name + "-" + v}, Spec: appsv1.DeploymentSpec{
				Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{ServiceAccountName: app.name,
					Containers: []corev1.Container{{Name: app.name, Image: "registry.example.com/" + app.name + rules.Digest,
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}}}}, metav1.CreateOptions{})
			require.NoError(t, err)
		}
	}
}

// testCA is a root and an intermediate for istiod (the plugged-in CA).
func testCA(t *testing.T) *mesh.SecretCA {
	t.Helper()
	root := pki.Certificate(t, "kplane test mesh root", nil, true, nil)
	inter := pki.Certificate(t, "kplane test mesh intermediate", nil, true, root)
	key, err := inter.KeyPEM()
	require.NoError(t, err)
	return &mesh.SecretCA{RootCert: pulumi.String(root.PEM), CertChain: pulumi.String(string(inter.PEM) + string(root.PEM)),
		CACert: pulumi.String(inter.PEM), CAKey: pulumi.String(key)}
}

// TestMeshCertificateAlerts: the certificate alerts pass Prometheus's own checks and fire when
// they should — a root expiring in 10 days fires (after its hour), one expiring in 60 days does
// not, signing errors fire — per `promtool test rules` on series shaped like istiod's metrics.
func TestMeshCertificateAlerts(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "mesh-certificates.yml")
	require.NoError(t, os.WriteFile(rules, []byte(mesh.AlertRules(30)), 0o644))
	out, err := exec.Command("promtool", "check", "rules", rules).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "SUCCESS: 3 rules found")
	// Times in promtool tests start at 0 (the epoch): 10 days = 864000 s.
	tests := `rule_files: [mesh-certificates.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'citadel_server_root_cert_expiry_timestamp{pod="istiod-a"}'
        values: '864000x120'
      - series: 'citadel_server_cert_chain_expiry_timestamp{pod="istiod-a"}'
        values: '5184000x120'
      - series: 'citadel_server_csr_sign_err_count{pod="istiod-a"}'
        values: '0x30 1+1x90'
    alert_rule_test:
      - eval_time: 30m
        alertname: IstioRootCertificateExpiring
        exp_alerts: []
      - eval_time: 90m
        alertname: IstioRootCertificateExpiring
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: "The mesh root certificate expires within 30 days: rotate the root before workloads stop trusting each other."
              runbook: "docs/components/mesh.md#certificates"
      - eval_time: 90m
        alertname: IstioCACertificateExpiring
        exp_alerts: []
      - eval_time: 50m
        alertname: IstioCertificateSigningFailing
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: "istiod fails to sign workload certificates: proxies cannot renew and mutual TLS breaks when their certificates expire."
              runbook: "docs/components/mesh.md#certificates"
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tests.yml"), []byte(tests), 0o644))
	cmd := exec.Command("promtool", "test", "rules", "tests.yml")
	cmd.Dir = dir
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "SUCCESS")
}
