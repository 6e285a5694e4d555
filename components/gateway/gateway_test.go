package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/policies/pack"
	"github.com/kplane/kplane/policies/services"
)

const publicKey = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----\n"

var digest = "@sha256:" + strings.Repeat("d", 64)

func sample(engine Engine) Args {
	a := Args{Engine: engine, Host: "api.example.com", TLSSecret: "api-tls", SpecsDir: "catalog/testdata",
		Tokens: Tokens{Issuer: "https://id.example.com/realms/kplane", PublicKey: publicKey},
		APIs: []API{
			{Name: "orders", Title: "Orders", Visibility: "external", Owners: []string{"shop"},
				Plans: []catalog.Plan{{Name: "bronze", RequestsPerMinute: 60}, {Name: "gold", RequestsPerSecond: 50}},
				Versions: []Version{{Version: "v1", Spec: "orders-v1.yaml", Upstream: Upstream{Service: "orders", Namespace: "shop", Port: 8080}},
					{Version: "v2", Spec: "orders-v2.yaml", Upstream: Upstream{Service: "orders-v2", Namespace: "shop", Port: 8080}}}},
			{Name: "ledger", Visibility: "internal", Anonymous: true,
				Versions: []Version{{Version: "v1", Spec: "orders-v1.yaml", Upstream: Upstream{Service: "ledger", Namespace: "payments", Port: 80}}}},
		},
		Consumers: []Consumer{{ClientID: "shop-web", Owner: "shop", Plan: "bronze", APIs: []string{"orders"}}, {ClientID: "partner.acme", Plan: "gold", APIs: []string{"orders"}}},
		Catalog:   &Catalog{Image: "registry.example.com/kplane-catalog" + digest, Host: "developers.example.com", SessionKeySecret: "catalog-session"},
		KubeAPI:   &KubeAPI{Host: "kube.example.com", AllowedCIDRs: []string{"203.0.113.0/24"}},
	}
	if engine == "istio" {
		a.Istio = &IstioGateway{Name: "ingress", Namespace: "istio-ingress"}
	} else {
		a.Kong = &KongInstall{Image: "registry.example.com/kong" + digest, ControllerImage: "registry.example.com/kong-ingress-controller" + digest}
	}
	return a
}

func TestValidate(t *testing.T) {
	require.NoError(t, sample("kong").Validate())
	require.NoError(t, sample("istio").Validate())
	for _, c := range []struct {
		engine string
		mutate func(*Args)
		want   string
	}{
		{"kong", func(a *Args) { a.APIs[0].Versions[1].Spec = "broken.yaml" }, "apis[0].versions[1].spec \"broken.yaml\": catalog/testdata/broken.yaml: not a readable OpenAPI document"},
		{"kong", func(a *Args) { a.APIs[0].Plans = nil }, "apis[0].plans: required; a public API needs at least one plan with limits"},
		{"kong", func(a *Args) { a.APIs[0].Plans[0].RequestsPerMinute = 0 }, "apis[0].plans[0]: no limits"},
		{"kong", func(a *Args) { a.APIs[0].Anonymous = true }, "apis[0].anonymous: a public route without authentication"},
		{"kong", func(a *Args) { a.TLSSecret = "" }, "tlsSecret: required"},
		{"kong", func(a *Args) { a.Tokens.PublicKey = "" }, "tokens.publicKey"},
		{"kong", func(a *Args) { a.Consumers[0].Plan = "platinum" }, `consumers[0].plan "platinum": not a plan of orders`},
		{"kong", func(a *Args) { a.Consumers[0].APIs = []string{"billing"} }, `consumers[0].apis[0] "billing": not one of apis`},
		{"kong", func(a *Args) { a.Kong.Image = "kong:3.9" }, "pin it by digest"},
		{"kong", func(a *Args) { a.APIs[0].Versions[0].Upstream.Port = 0 }, "upstream: required; service, namespace and port"},
		{"istio", func(a *Args) { a.APIs[0].Plans[0].RequestsPerMonth = 1000 }, "monthly quotas per consumer need the kong engine"},
		{"istio", func(a *Args) { a.Istio = nil }, "istio: required; name and namespace of the mesh gateway"},
		{"kong", func(a *Args) { a.Catalog.Image = "kplane-catalog:latest" }, "catalog.image"},
		{"kong", func(a *Args) { a.KubeAPI.AllowedCIDRs = []string{"0.0.0.0/0"} }, "the whole internet"},
		{"istio", func(a *Args) { a.KubeAPI.AllowedCIDRs = nil }, "kubeAPI.allowedCidrs: required"},
	} {
		a := sample(Engine(c.engine))
		c.mutate(&a)
		assert.ErrorContains(t, a.Validate(), c.want)
	}
}

func TestNothingCreatedOnBadInput(t *testing.T) {
	m := &pack.Recorder{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		a := sample("kong")
		a.APIs[0].Anonymous = true
		_, err := NewGateway(ctx, "gw", &a)
		return err
	}, pulumi.WithMocks("kplane", "dev", m))
	require.ErrorContains(t, err, "a public route without authentication")
	assert.Empty(t, m.Inputs())
}

func graph(t *testing.T, engine string) (*pack.Recorder, map[string]string) {
	m := &pack.Recorder{}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		a := sample(Engine(engine))
		_, err := NewGateway(ctx, "gw", &a)
		return err
	}, pulumi.WithMocks("kplane", "dev", m)))
	out := map[string]string{}
	for k, v := range m.Inputs() {
		b, err := json.Marshal(v.Mappable())
		require.NoError(t, err)
		out[k] = string(b)
	}
	return m, out
}

func TestKongGraph(t *testing.T) {
	m, g := graph(t, "kong")
	ing := g["kubernetes:networking.k8s.io/v1:Ingress gw-shop-ingress-kplane-orders-v2"]
	for _, want := range []string{`"konghq.com/plugins":"kplane-keycloak-jwt,kplane-orders-acl,kplane-orders-plan-bronze,kplane-orders-plan-gold"`,
		`"konghq.com/protocols":"https"`, `"path":"/orders/v2"`, `"secretName":"api-tls"`, `"ingressClassName":"kong"`} {
		assert.Contains(t, ing, want)
	}
	assert.NotContains(t, g["kubernetes:networking.k8s.io/v1:Ingress gw-payments-ingress-kplane-ledger-v1"], "jwt", "an internal anonymous API")
	assert.Contains(t, g["kubernetes:configuration.konghq.com/v1:KongClusterPlugin gw-kongclusterplugin-kplane-keycloak-jwt"], `"key_claim_name":"azp"`)
	assert.Contains(t, g["kubernetes:configuration.konghq.com/v1:KongClusterPlugin gw-kongclusterplugin-kplane-orders-plan-gold"], `"second":50`)
	consumer := g["kubernetes:configuration.konghq.com/v1:KongConsumer gw-kplane-gateway-kongconsumer-kplane-partner-acme"]
	assert.Contains(t, consumer, `"credentials":["kplane-jwt-partner-acme","kplane-acl-partner-acme-orders"]`)
	assert.Contains(t, consumer, `"konghq.com/plugins":"kplane-orders-plan-gold"`)
	assert.Contains(t, g["kubernetes:core/v1:Secret gw-kplane-gateway-secret-kplane-jwt-partner-acme"], `"konghq.com/credential":"jwt"`)
	assert.Contains(t, g["kubernetes:helm.sh/v4:Chart gw-kong"], `"unifiedRepoTag":"registry.example.com/kong@sha256:`)
	kube := g["kubernetes:configuration.konghq.com/v1beta1:TCPIngress gw-default-tcpingress-kplane-kube-api"]
	assert.Contains(t, kube, `"konghq.com/protocols":"tls_passthrough"`)
	assert.Contains(t, kube, `"backend":{"serviceName":"kubernetes","servicePort":443},"host":"kube.example.com"`)
	cm := g["kubernetes:core/v1:ConfigMap gw-kplane-gateway-configmap-kplane-catalog"]
	assert.Contains(t, cm, `orders-v2.json.gz`)
	assert.Contains(t, cm, `\"gatewayURL\":\"https://api.example.com\"`)
	p := &pack.Pack{Name: "t", Version: "0", Policies: services.RoutePolicies()}
	assert.Empty(t, p.EvaluateStack(m.Resources, nil), "kplane's route policies pass: every public route authenticated and rate limited")
}

func TestIstioGraph(t *testing.T) {
	m, g := graph(t, "istio")
	authz := g["kubernetes:security.istio.io/v1:AuthorizationPolicy gw-istio-ingress-authorizationpolicy-kplane-apis"]
	assert.Contains(t, authz, `"requestPrincipals":["https://id.example.com/realms/kplane/*"]`)
	assert.Contains(t, authz, `"values":["shop-web","partner.acme"]`)
	assert.Contains(t, authz, `"paths":["/ledger/v1/*"]`)
	assert.Contains(t, g["kubernetes:security.istio.io/v1:RequestAuthentication gw-istio-ingress-requestauthentication-kplane-keycloak"],
		`"jwksUri":"https://id.example.com/realms/kplane/protocol/openid-connect/certs"`)
	assert.Contains(t, g["kubernetes:networking.istio.io/v1alpha3:EnvoyFilter gw-istio-ingress-envoyfilter-kplane-rate-limits"], `"max_tokens":3000`)
	assert.Contains(t, authz, `"remoteIpBlocks":["203.0.113.0/24"]}}],"when":[{"key":"connection.sni","values":["kube.example.com"]}]`)
	gw := g["kubernetes:networking.istio.io/v1:Gateway gw-istio-ingress-gateway-ingress"]
	assert.Contains(t, gw, `"mode":"PASSTHROUGH"`)
	assert.Contains(t, gw, `"credentialName":"api-tls"`)
	assert.Contains(t, gw, `"httpsRedirect":true`)
	p := &pack.Pack{Name: "t", Version: "0", Policies: services.RoutePolicies()}
	assert.Empty(t, p.EvaluateStack(m.Resources, nil), "kplane's route policies pass")
}

// TestIstioAPIWithoutConsumers: an API that needs a token and has no consumer yet gets no ALLOW
// rule (nobody may call it, as with Kong's ACL), never a claim condition without values, which
// istiod's validation refuses.
func TestIstioAPIWithoutConsumers(t *testing.T) {
	a := sample(EngineIstio)
	a.Consumers = nil
	for _, obj := range a.IstioObjects() {
		if obj["kind"] != "AuthorizationPolicy" {
			continue
		}
		raw, _ := json.Marshal(obj)
		assert.NotContains(t, string(raw), "/orders/", "no rule lets anyone call orders")
		assert.NotContains(t, string(raw), "request.auth.claims[azp]")
		assert.Contains(t, string(raw), "/ledger/v1/*", "the anonymous API keeps its rule")
	}
}

// TestCatalogTrustsTheIssuerCA: with a private CA, the portal gets it (a ConfigMap, mounted,
// --ca-file), as it discovers the realm when it starts; without, nothing of it.
func TestCatalogTrustsTheIssuerCA(t *testing.T) {
	a := sample(EngineIstio)
	objs, err := a.catalogObjects()
	require.NoError(t, err)
	raw, _ := json.Marshal(objs)
	assert.NotContains(t, string(raw), "ca-file")
	a.Catalog.IssuerCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	objs, err = a.catalogObjects()
	require.NoError(t, err)
	raw, _ = json.Marshal(objs)
	assert.Contains(t, string(raw), `"--ca-file=/etc/kplane/issuer-ca/ca.crt"`)
	assert.Contains(t, string(raw), `{"mountPath":"/etc/kplane/issuer-ca","name":"issuer-ca","readOnly":true}`)
	assert.Contains(t, string(raw), `"data":{"ca.crt":"-----BEGIN CERTIFICATE-----\nMIIB`)
}

// TestManifest: the catalog lists what the gateway routes.
func TestManifest(t *testing.T) {
	m := sample("kong").Manifest()
	assert.Equal(t, "https://api.example.com", m.GatewayURL)
	require.Len(t, m.Products, 2)
	assert.Equal(t, catalog.VersionRef{Version: "v2", Spec: "orders-v2.json.gz", Path: "/orders/v2"}, m.Products[0].Versions[1])
	assert.Equal(t, "partner.acme", m.Consumers[1].ClientID)
}
