package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kplane/kplane/components/gateway"
	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/tests/testbed"
)

// gatewayArgs publishes the real public documents of catalogDir: the petstore and Stripe's API
// externally with plans, Kubernetes' batch/v1 in two versions, an internal anonymous API, two
// consumers, and the catalog.
func gatewayArgs(t *testing.T, engine gateway.Engine, prefix string) gateway.Args {
	dir := catalogDir(t)
	a := gateway.Args{Engine: engine, Namespace: prefix + "-gateway", Host: "api.example.com", TLSSecret: "api-tls", SpecsDir: dir,
		Tokens: gateway.Tokens{Issuer: "https://id.example.com/realms/kplane", PublicKey: "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----\n"},
		APIs: []gateway.API{
			{Name: "petstore", Visibility: "external", Plans: []catalog.Plan{{Name: "free", RequestsPerMinute: 60}},
				Versions: []gateway.Version{{Version: "v3", Spec: "petstore-v3.json", Upstream: gateway.Upstream{Service: "petstore", Namespace: prefix + "-shop", Port: 8080}}}},
			{Name: "payments", Visibility: "external", Plans: []catalog.Plan{{Name: "gold", RequestsPerSecond: 50}},
				Versions: []gateway.Version{{Version: "2023-10-16", Spec: "stripe-2023-10-16.yaml", Upstream: gateway.Upstream{Service: "payments", Namespace: prefix + "-shop", Port: 443}}}},
			{Name: "batch", Visibility: "external", Plans: []catalog.Plan{{Name: "free", RequestsPerMinute: 120}},
				Versions: []gateway.Version{{Version: "1.35", Spec: "batch-1.35.0.json", Upstream: gateway.Upstream{Service: "batch-135", Namespace: prefix + "-shop", Port: 80}},
					{Version: "1.37", Spec: "batch-1.37.2.json", Upstream: gateway.Upstream{Service: "batch-137", Namespace: prefix + "-shop", Port: 80}}}},
			{Name: "tasks", Visibility: "internal", Anonymous: true,
				Versions: []gateway.Version{{Version: "1.0", Spec: "asana-1.0.yaml", Upstream: gateway.Upstream{Service: "tasks", Namespace: prefix + "-shop", Port: 80}}}},
		},
		Consumers: []gateway.Consumer{{ClientID: "shop-web", Plan: "free", APIs: []string{"petstore", "batch"}}, {ClientID: "partner.acme", Plan: "gold", APIs: []string{"payments"}}},
		Catalog:   &gateway.Catalog{Image: "registry.example.com/kplane-catalog" + rules.Digest, Host: "developers.example.com", SessionKeySecret: "catalog-session"},
		KubeAPI:   &gateway.KubeAPI{Host: "kube.example.com", AllowedCIDRs: []string{"203.0.113.0/24"}},
	}
	if engine == "istio" {
		a.Istio = &gateway.IstioGateway{Name: "ingress", Namespace: prefix + "-ingress"}
	}
	return a
}

// TestGateway: `pulumi up` of the gateway, Kong and Istio engines, against a real API server
// with Kong's and Istio's CRDs: every route, plugin, consumer, credential and policy accepted;
// the catalog's ConfigMap holds every document, which kplane-catalog loads as deployed; a bad
// document, a public API without limits and a public route without authentication are refused
// by preview with nothing created; destroy leaves nothing.
func TestGateway(t *testing.T) {
	integration(t)
	ctx := context.Background()
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	kong := "github.com/kong/kubernetes-ingress-controller@" + pinned(t, "KONG_CRD_VERSION")
	// The newest Kong CRDs the module proxy serves (ingress controller 1.3.4's); its
	// KongClusterPlugin says Namespaced where Kong's released CRD (and Kong itself) is Cluster.
	clusterScoped := func(crd *unstructured.Unstructured) {
		if crd.GetName() == "kongclusterplugins.configuration.konghq.com" {
			require.NoError(t, unstructured.SetNestedField(crd.Object, "Cluster", "spec", "scope"))
		}
	}
	for _, crd := range []string{"kongplugins", "kongclusterplugins", "kongconsumers", "tcpingresses"} {
		upstreamCRD(t, c, kong, "railgun/config/crd/bases/configuration.konghq.com_"+crd+".yaml", clusterScoped)
	}
	upstreamCRD(t, c, "istio.io/api@"+pinned(t, "ISTIO_API_VERSION"), "kubernetes/customresourcedefinitions.gen.yaml")
	cs, err := c.Clientset()
	require.NoError(t, err)
	dyn, err := c.Dynamic()
	require.NoError(t, err)
	for _, ns := range []string{"gk-shop", "gi-shop", "gi-ingress"} {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	for _, engine := range []gateway.Engine{gateway.EngineKong, gateway.EngineIstio} {
		prefix := map[gateway.Engine]string{gateway.EngineKong: "gk", gateway.EngineIstio: "gi"}[engine]
		args := gatewayArgs(t, engine, prefix)
		s := openStack(t, "gateway-"+string(engine), func(ctx *pulumi.Context) error {
			k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
			if err != nil {
				return err
			}
			_, err = gateway.NewGateway(ctx, "gw", &args, pulumi.Provider(k8s))
			return err
		}, nil, t.TempDir())
		good := args
		for _, bad := range []struct {
			mutate func(*gateway.Args)
			want   string
		}{
			{func(a *gateway.Args) { a.APIs[1].Versions[0].Spec = "broken.yaml" }, `apis[1].versions[0].spec "broken.yaml": `},
			{func(a *gateway.Args) { a.APIs[0].Plans[0].RequestsPerMinute = 0 }, "apis[0].plans[0]: no limits"},
			{func(a *gateway.Args) { a.APIs[0].Anonymous = true }, "apis[0].anonymous: a public route without authentication"},
		} {
			args = gatewayArgs(t, engine, prefix)
			require.NoError(t, os.WriteFile(filepath.Join(args.SpecsDir, "broken.yaml"), []byte("openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /x:\n    get:\n      responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Nope'}}}}}\n"), 0o644))
			bad.mutate(&args)
			_, err := s.Preview(ctx)
			require.Error(t, err)
			assert.Contains(t, err.Error(), bad.want)
		}
		args = good
		up, err := s.Up(ctx)
		require.NoError(t, err, "%s: every object accepted by the API server", engine)
		t.Logf("%s: pulumi up created %d resources", engine, (*up.Summary.ResourceChanges)["create"])

		ingressNS := prefix + "-ingress"
		if engine == "kong" {
			ing := get(t, dyn, schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}, prefix+"-shop", "kplane-batch-1-37")
			assert.Equal(t, "kplane-keycloak-jwt,kplane-batch-acl,kplane-batch-plan-free", ing.GetAnnotations()["konghq.com/plugins"])
			consumer := get(t, dyn, schema.GroupVersionResource{Group: "configuration.konghq.com", Version: "v1", Resource: "kongconsumers"}, args.Namespace, "kplane-partner-acme")
			assert.Equal(t, "partner.acme", str(consumer, "username"))
			plan := get(t, dyn, schema.GroupVersionResource{Group: "configuration.konghq.com", Version: "v1", Resource: "kongclusterplugins"}, "", "kplane-payments-plan-gold")
			assert.Equal(t, "rate-limiting", str(plan, "plugin"))
			secret, err := cs.CoreV1().Secrets(args.Namespace).Get(ctx, "kplane-jwt-shop-web", metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, "jwt", secret.Labels["konghq.com/credential"])
			kube := get(t, dyn, schema.GroupVersionResource{Group: "configuration.konghq.com", Version: "v1beta1", Resource: "tcpingresses"}, "default", "kplane-kube-api")
			assert.Equal(t, "tls_passthrough", kube.GetAnnotations()["konghq.com/protocols"])
		} else {
			get(t, dyn, istioGVR("security.istio.io", "requestauthentications"), ingressNS, "kplane-keycloak")
			authz := get(t, dyn, istioGVR("security.istio.io", "authorizationpolicies"), ingressNS, "kplane-apis")
			assert.Equal(t, "ALLOW", str(authz, "spec", "action"))
			get(t, dyn, istioGVR("networking.istio.io", "virtualservices"), ingressNS, "kplane-payments-2023-10-16")
			get(t, dyn, istioGVR("networking.istio.io", "virtualservices"), ingressNS, "kplane-kube-api")
			get(t, dyn, schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: "envoyfilters"}, ingressNS, "kplane-rate-limits")
		}
		// The catalog as deployed: its ConfigMap's files, loaded by kplane-catalog itself.
		cm, err := cs.CoreV1().ConfigMaps(args.Namespace).Get(ctx, "kplane-catalog", metav1.GetOptions{})
		require.NoError(t, err)
		deployed := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(deployed, "catalog.json"), []byte(cm.Data["catalog.json"]), 0o644))
		for name, raw := range cm.BinaryData {
			require.NoError(t, os.WriteFile(filepath.Join(deployed, name), raw, 0o644))
		}
		out, err := exec.Command(buildCommand(t, "github.com/kplane/kplane/cmd/kplane-catalog"), "validate", "--dir", deployed).CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "catalog: 4 products, 5 versions loaded and validated")
		t.Logf("%s: ConfigMap of %d documents, %d bytes gzipped", engine, len(cm.BinaryData), size(cm.BinaryData))

		_, err = s.Destroy(ctx)
		require.NoError(t, err)
		_, err = cs.CoreV1().ConfigMaps(args.Namespace).Get(ctx, "kplane-catalog", metav1.GetOptions{})
		assert.Error(t, err, "destroyed")
	}
}

func size(m map[string][]byte) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}
