package mesh

import (
	"encoding/json"
	"flag"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/policies/services"
)

var update = flag.Bool("update", false, "rewrite golden files")

var digest = "@sha256:" + strings.Repeat("b", 64)

// sample is a mesh with every routing feature: a shop whose web calls the cart, whose cart
// is canaried by weight and by header, with retries, a timeout, a circuit breaker, faults and
// a mirror; the ingress gateway calls web.
func sample() Args {
	return Args{
		Revisions: []Revision{{Name: "1-29-2", PilotImage: "registry.example.com/istio/pilot" + digest, ProxyImage: "registry.example.com/istio/proxyv2" + digest}},
		CNI:       CNI{Image: "registry.example.com/istio/install-cni" + digest},
		Gateways:  []Gateway{{Name: "ingress", Namespace: "istio-ingress"}},
		Teams: []Team{{Namespace: "shop", Services: []Service{
			{Name: "web", Callers: []string{"gateway/ingress"}, Route: &Route{Timeout: "5s", Retries: &Retries{Attempts: 3, PerTryTimeout: "1s"}}},
			{Name: "cart", ServiceAccount: "cart-sa", Callers: []string{"web", "payments/checkout"}, Route: &Route{
				Subsets:        []Subset{{Name: "stable", Labels: map[string]string{"version": "v1"}}, {Name: "canary", Labels: map[string]string{"version": "v2"}}},
				Weights:        []Weight{{Subset: "stable", Percent: 90}, {Subset: "canary", Percent: 10}},
				HeaderRoutes:   []HeaderRoute{{Header: "x-canary", Exact: "always", Subset: "canary"}},
				CircuitBreaker: &CircuitBreaker{MaxConnections: 100, MaxPendingRequests: 10, Consecutive5xx: 5},
				Fault:          &Fault{DelayPercent: 1, Delay: "2s", AbortPercent: 0.5, AbortStatus: 503},
				Mirror:         &Mirror{Subset: "canary", Percent: 5},
			}},
		}}, {Namespace: "payments", Services: []Service{{Name: "checkout", Callers: []string{"shop/web"}}}}},
	}
}

func TestValidate(t *testing.T) {
	require.NoError(t, sample().Validate())
	cart := func(a *Args) *Route { return a.Teams[0].Services[1].Route }
	for _, c := range []struct {
		mutate func(*Args)
		want   string
	}{
		{func(a *Args) { a.Revisions = nil }, "revisions: at least one istiod revision"},
		{func(a *Args) { a.Revisions[0].PilotImage = "istio/pilot:1.29.2" }, "pin istiod by digest"},
		{func(a *Args) { a.Revisions[0].Name = "1.29" }, `revisions[0].name "1.29"`},
		{func(a *Args) { a.CNI.Image = "registry.istio.io/testing/install-cni:latest" }, "cni.image \"registry.istio.io/testing/install-cni:latest\": pin Istio's CNI node agent by digest"},
		{func(a *Args) { a.CNI.ConfDir = "etc/cni/../net.d" }, `cni.confDir "etc/cni/../net.d": the nodes' folder as a clean absolute path`},
		{func(a *Args) { a.StableRevision = "1-30-0" }, `stableRevision "1-30-0": not one of revisions (1-29-2)`},
		{func(a *Args) { cart(a).Weights[1].Percent = 20 }, "teams[0].services[1].route.weights: they sum to 110; make them sum to 100"},
		{func(a *Args) { cart(a).Weights[1].Subset = "beta" }, `route.weights[1].subset "beta": no such subset (subsets: canary, stable)`},
		{func(a *Args) { cart(a).HeaderRoutes[0].Subset = "beta" }, `headerRoutes[0].subset "beta": no such subset`},
		{func(a *Args) { cart(a).HeaderRoutes[0].Prefix = "a" }, "give exactly one of exact, prefix or regex"},
		{func(a *Args) { cart(a).Mirror.Subset = "shadow" }, `mirror.subset "shadow": no such subset`},
		{func(a *Args) { cart(a).Fault.AbortStatus = 42 }, "fault.abortStatus 42"},
		{func(a *Args) { cart(a).Timeout = "5 seconds" }, `timeout "5 seconds": a positive duration`},
		{func(a *Args) { cart(a).CircuitBreaker.Consecutive5xx = 0 }, "circuitBreaker.consecutive5xx 0"},
		{func(a *Args) { a.Teams[0].Services[1].Callers = []string{"webb"} }, `services[1].callers[0] "webb": not a service of shop (known: cart, web)`},
		{func(a *Args) { a.Teams[0].Services[1].Callers = []string{"billing/invoice"} }, `"billing/invoice": namespace "billing" is not a team of the mesh`},
		{func(a *Args) { a.Teams[0].Services[1].Callers = []string{"payments/refunds"} }, `"refunds" is not a service of payments (known: checkout)`},
		{func(a *Args) { a.Teams[0].Services[0].Callers = []string{"gateway/egress"} }, `no gateway "egress" in gateways`},
		{func(a *Args) { a.Teams[1].Namespace = "shop" }, `teams[1].namespace "shop": unique`},
		{func(a *Args) { a.Certificates.WorkloadTTL = "72h" }, "certificates.workloadTTL \"72h\": longer than maxWorkloadTTL 48h"},
		{func(a *Args) { a.Certificates.CA = &CA{} }, "certificates.ca: give exactly one of secret or certManager"},
		{func(a *Args) { a.Certificates.CA = &CA{Secret: &SecretCA{RootCert: pulumi.String("x")}} }, "rootCert, certChain, caCert and caKey are all required"},
		{func(a *Args) {
			a.Certificates.CA = &CA{CertManager: &CertManagerCA{IssuerName: "root", Duration: "72h"}}
		}, "renewBefore 720h must be shorter than duration 72h"},
		{func(a *Args) { a.Observability = &Observability{} }, "observability.grafanaAdminSecret: required"},
		{func(a *Args) { a.Gateways[0].ServiceType = "External" }, `serviceType "External"`},
	} {
		a := sample()
		c.mutate(&a)
		assert.ErrorContains(t, a.Validate(), c.want)
	}
}

// TestNothingCreatedOnBadInput: a refused argument registers no resource at all.
func TestNothingCreatedOnBadInput(t *testing.T) {
	m := &pack.Recorder{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		a := sample()
		a.Teams[0].Services[1].Route.Weights[0].Percent = 50
		_, err := NewMesh(ctx, "mesh", &a)
		return err
	}, pulumi.WithMocks("kplane", "dev", m))
	require.ErrorContains(t, err, `Mesh "mesh": teams[0].services[1].route.weights: they sum to 60`)
	assert.Empty(t, m.Inputs())
}

func TestGraph(t *testing.T) {
	m := &pack.Recorder{}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		a := sample()
		a.Certificates.CA = &CA{CertManager: &CertManagerCA{IssuerName: "platform-root"}}
		a.Observability = &Observability{GrafanaAdminSecret: "grafana-admin", TraceSampling: 5}
		_, err := NewMesh(ctx, "mesh", &a)
		return err
	}, pulumi.WithMocks("kplane", "dev", m)))
	in := m.Inputs()
	js := func(key string) string {
		v, ok := in[key]
		require.True(t, ok, "%s registered; have %v", key, slices.Collect(maps.Keys(in)))
		b, err := json.Marshal(v.Mappable())
		require.NoError(t, err)
		return string(b)
	}
	istiod := js("kubernetes:helm.sh/v4:Chart mesh-istiod-1-29-2")
	for _, want := range []string{`"revision":"1-29-2"`, `"revisionTags":["stable"]`, `"version":"1.29.2"`, `"DEFAULT_WORKLOAD_CERT_TTL":"24h"`,
		`"SECRET_GRACE_PERIOD_RATIO":"0.5"`, `"mode":"REGISTRY_ONLY"`, `"cni":{"enabled":true}`, `"image":"registry.example.com/istio/pilot@sha256:`,
		`"service":"jaeger-collector.istio-observability.svc.cluster.local"`} {
		assert.Contains(t, istiod, want)
	}
	assert.Contains(t, js("kubernetes:helm.sh/v4:Chart mesh-base"), `"defaultRevision":"1-29-2"`)
	assert.Contains(t, js("kubernetes:helm.sh/v4:Chart mesh-gateway-ingress"), `"revision":"stable"`)
	assert.Contains(t, js("kubernetes:core/v1:Namespace mesh-ns-shop"), `"istio.io/rev":"stable"`)
	assert.Contains(t, js("kubernetes:security.istio.io/v1:PeerAuthentication mesh-mtls-strict"), `"mode":"STRICT"`)
	assert.Contains(t, js("kubernetes:cert-manager.io/v1:Certificate mesh-intermediate"), `"secretName":"cacerts"`)
	assert.Contains(t, js("kubernetes:telemetry.istio.io/v1:Telemetry mesh-telemetry"), `"randomSamplingPercentage":5`)
	kiali := js("kubernetes:helm.sh/v4:Chart mesh-kiali")
	assert.Contains(t, kiali, `"url":"http://prometheus-server.istio-observability.svc"`)
	assert.Contains(t, js("kubernetes:helm.sh/v4:Chart mesh-grafana"), `"gnetId":7639`)
	assert.Contains(t, js("kubernetes:helm.sh/v4:Chart mesh-prometheus"), `"alert":"IstioRootCertificateExpiring"`)
	// Routing, feature by feature, on the rendered objects.
	vs := js("kubernetes:networking.istio.io/v1:VirtualService mesh-shop-virtualservice-cart")
	for _, want := range []string{`"headers":{"x-canary":{"exact":"always"}}`, `"subset":"stable"},"weight":90`, `"subset":"canary"},"weight":10`,
		`"abort":{"httpStatus":503,"percentage":{"value":0.5}}`, `"delay":{"fixedDelay":"2s"`, `"mirror":{"host":"cart.shop.svc.cluster.local","subset":"canary"}`,
		`"mirrorPercentage":{"value":5}`} {
		assert.Contains(t, vs, want)
	}
	web := js("kubernetes:networking.istio.io/v1:VirtualService mesh-shop-virtualservice-web")
	assert.Contains(t, web, `"retries":{"attempts":3,"perTryTimeout":"1s","retryOn":"5xx,reset,connect-failure,retriable-4xx"}`)
	assert.Contains(t, web, `"timeout":"5s"`)
	dr := js("kubernetes:networking.istio.io/v1:DestinationRule mesh-shop-destinationrule-cart")
	for _, want := range []string{`"outlierDetection":{"baseEjectionTime":"30s","consecutive5xxErrors":5,"interval":"10s","maxEjectionPercent":50}`,
		`"tcp":{"maxConnections":100}`, `"tls":{"mode":"ISTIO_MUTUAL"}`, `{"labels":{"version":"v2"},"name":"canary"}`} {
		assert.Contains(t, dr, want)
	}
	allow := js("kubernetes:security.istio.io/v1:AuthorizationPolicy mesh-shop-authorizationpolicy-allow-cart")
	assert.Contains(t, allow, `"principals":["cluster.local/ns/shop/sa/web","cluster.local/ns/payments/sa/checkout"]`)
	assert.Contains(t, js("kubernetes:security.istio.io/v1:AuthorizationPolicy mesh-shop-authorizationpolicy-allow-web"), `"principals":["cluster.local/ns/istio-ingress/sa/ingress"]`)
	assert.Contains(t, js("kubernetes:security.istio.io/v1:AuthorizationPolicy mesh-payments-authorizationpolicy-deny-by-default"),
		`"name":"deny-by-default","namespace":"payments"},"spec":{}}`, "an ALLOW policy without rules: everything else is denied")
}

// TestGolden: the rendered Istio objects of the sample's teams, and istiod's values.
func TestGolden(t *testing.T) {
	a := sample().withDefaults()
	out := map[string]any{"istiod": a.istiodValues(a.Revisions[0])}
	for _, team := range a.Teams {
		out["team-"+team.Namespace] = a.teamObjects(team)
	}
	got, err := yaml.Marshal(out)
	require.NoError(t, err)
	golden := "testdata/mesh.golden.yaml"
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -update to create %s", golden)
	assert.Equal(t, string(want), string(got))
}

func TestAlertRulesParse(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	require.NoError(t, yaml.Unmarshal([]byte(AlertRules(30)), &rules))
	require.Len(t, rules.Groups[0].Rules, 3)
	assert.Equal(t, "min(citadel_server_root_cert_expiry_timestamp) - time() < 30 * 86400", rules.Groups[0].Rules[0].Expr)
}

// TestPolicies: the mesh passes kplane's own mesh policies (STRICT mTLS everywhere meshed, no
// rule lowering it; its routes are internal), and a team that lowers mTLS is caught.
func TestPolicies(t *testing.T) {
	p := &pack.Pack{Name: "t", Version: "0", Policies: append(services.MeshPolicies(), services.RoutePolicies()...)}
	rec := &pack.Recorder{}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		a := sample()
		_, err := NewMesh(ctx, "mesh", &a)
		return err
	}, pulumi.WithMocks("kplane", "dev", rec)))
	assert.Empty(t, p.EvaluateStack(rec.Resources, nil), "kplane's mesh policies pass")

	a := sample()
	team := a.Teams[1]
	objs := a.withDefaults().teamObjects(team)
	objs[0]["spec"] = map[string]any{"mtls": map[string]any{"mode": "PERMISSIVE"}}
	var rs []pack.Resource
	for _, r := range rec.Resources {
		if r.Kind("security.istio.io", "PeerAuthentication") && r.Namespace() == team.Namespace {
			r.Props = objs[0]
		}
		rs = append(rs, r)
	}
	findings := p.EvaluateStack(rs, nil)
	require.NotEmpty(t, findings)
	assert.Contains(t, findings[0].Message, "PeerAuthentication payments/default: mtls.mode PERMISSIVE")
}

// TestCanaryRevisions: two istiod revisions side by side; the tag stays on the stable one,
// a canary namespace is pinned to the new revision, and moving the tag is one argument.
func TestCanaryRevisions(t *testing.T) {
	run := func(stable string) map[string]string {
		m := &pack.Recorder{}
		require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
			a := sample()
			a.Revisions = append(a.Revisions, Revision{Name: "1-30-0", PilotImage: "registry.example.com/istio/pilot" + digest, ProxyImage: "registry.example.com/istio/proxyv2" + digest})
			a.StableRevision = stable
			a.Teams[1].Revision = "1-30-0"
			_, err := NewMesh(ctx, "mesh", &a)
			return err
		}, pulumi.WithMocks("kplane", "dev", m)))
		out := map[string]string{}
		for key, v := range m.Inputs() {
			b, err := json.Marshal(v.Mappable())
			require.NoError(t, err)
			out[key] = string(b)
		}
		return out
	}
	got := run("")
	assert.Contains(t, got["kubernetes:helm.sh/v4:Chart mesh-istiod-1-29-2"], `"revisionTags":["stable"]`)
	assert.Contains(t, got["kubernetes:helm.sh/v4:Chart mesh-istiod-1-30-0"], `"revisionTags":[]`)
	assert.Contains(t, got["kubernetes:core/v1:Namespace mesh-ns-payments"], `"istio.io/rev":"1-30-0"`, "the canary namespace")
	assert.Contains(t, got["kubernetes:core/v1:Namespace mesh-ns-shop"], `"istio.io/rev":"stable"`)
	moved := run("1-30-0")
	assert.Contains(t, moved["kubernetes:helm.sh/v4:Chart mesh-istiod-1-30-0"], `"revisionTags":["stable"]`, "the tag moved")
	assert.Contains(t, moved["kubernetes:helm.sh/v4:Chart mesh-base"], `"defaultRevision":"1-30-0"`)
}
