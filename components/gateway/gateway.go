// Package gateway publishes an environment's API products: each version as gateway routes —
// Kong through its ingress controller's resources, or an Istio gateway — with Keycloak token
// validation, per-plan rate limits and quotas per consumer (a Keycloak client), and the API
// catalog (developer portal and admin API) that lists them.
package gateway

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

// KongChart is Kong's official chart, pinned.
var KongChart = addon.Chart{Repo: "https://charts.konghq.com", Name: "kong", Version: "2.33.2"}

// Args: the gateway of one environment.
type Args struct {
	// Engine: kong (default) or istio.
	Engine Engine `json:"engine,omitempty"`
	// Namespace of the gateway's own objects (default kplane-gateway).
	Namespace string `json:"namespace,omitempty"`
	// Host is the APIs' public host name; TLSSecret its certificate (kubernetes.io/tls) in the
	// namespace of each route (Kong) or of the Istio gateway. TLS only: plain HTTP redirects.
	Host      string `json:"host"`
	TLSSecret string `json:"tlsSecret"`
	// Kong installs Kong (DB-less) from its chart; nil when it runs already.
	Kong *KongInstall `json:"kong,omitempty"`
	// Istio is the mesh's gateway the routes bind to (engine istio).
	Istio *IstioGateway `json:"istio,omitempty"`
	// Tokens: the Keycloak realm whose access tokens the routes accept (the identity component's
	// outputs).
	Tokens Tokens `json:"tokens"`
	// SpecsDir: the OpenAPI documents' paths are relative to it (default: the working directory).
	SpecsDir string `json:"specsDir,omitempty"`
	// InternalCIDRs reach internal APIs (default the private ranges 10/8, 172.16/12, 192.168/16):
	// they share the host but answer no one else.
	InternalCIDRs []string `json:"internalCIDRs,omitempty"`
	// APIs are the products, Consumers who may call them.
	APIs      []API      `json:"apis"`
	Consumers []Consumer `json:"consumers,omitempty"`
	// Catalog deploys the API catalog (nil: none).
	Catalog *Catalog `json:"catalog,omitempty"`
	// KubeAPI exposes the cluster's API server through the gateway (nil: not).
	KubeAPI *KubeAPI `json:"kubeAPI,omitempty"`
}

// KubeAPI is the route to the Kubernetes API: TLS passed through by SNI, so the API server itself
// checks each client (its certificate — mutual TLS end to end — or its token), and only from
// AllowedCIDRs. Make it the only way in: the hardened cluster's apiAccess.allowedCidrs then names
// the gateway's addresses alone.
type KubeAPI struct {
	Host         string   `json:"host"`
	AllowedCIDRs []string `json:"allowedCidrs"`
}

// KongInstall: the chart, Kong and its controller by digest.
type KongInstall struct {
	Image           string `json:"image"`
	ControllerImage string `json:"controllerImage"`
	addon.Install
}

// IstioGateway is a gateway deployment of the mesh (mesh.Gateway).
type IstioGateway struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

// Tokens: the issuer (e.g. https://id.example.com/realms/kplane), its JWKS URL (default
// <issuer>/protocol/openid-connect/certs) and, for Kong's jwt plugin, the realm's RSA public key
// (PEM).
type Tokens struct {
	Issuer    string `json:"issuer"`
	JWKSURI   string `json:"jwksURI,omitempty"`
	PublicKey string `json:"publicKey,omitempty"`
}

// API is an API product.
type API struct {
	Name  string `json:"name"`
	Title string `json:"title,omitempty"`
	// Visibility: external (on the public host, in the developer portal) or internal.
	Visibility Visibility `json:"visibility"`
	Owners     []string   `json:"owners,omitempty"`
	// Anonymous routes take no token: internal APIs only.
	Anonymous bool           `json:"anonymous,omitempty"`
	Plans     []catalog.Plan `json:"plans,omitempty"`
	Versions  []Version      `json:"versions"`
}

// Version is one published version: its document and the service behind it.
type Version struct {
	Version string `json:"version"`
	// Spec is the OpenAPI document's path (relative to specsDir).
	Spec     string   `json:"spec"`
	Upstream Upstream `json:"upstream"`
}

// Upstream is the Kubernetes Service serving a version.
type Upstream struct {
	Service   string `json:"service"`
	Namespace string `json:"namespace"`
	Port      int    `json:"port"`
}

// Consumer is an application: a Keycloak client (its tokens' azp), on a plan of each product.
type Consumer struct {
	ClientID string   `json:"clientId"`
	Owner    string   `json:"owner,omitempty"`
	Plan     string   `json:"plan"`
	APIs     []string `json:"apis"`
}

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	version  = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	hostName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
)

// Validate names the argument and the fix; nothing is created when it fails. It reads every
// OpenAPI document (an invalid one is refused here).
func (a Args) Validate() error {
	var errs field.ErrorList
	a = a.withDefaults()
	errs.Add(field.Enum(field.At("engine"), a.Engine, EngineKong, EngineIstio))
	if !hostName.MatchString(a.Host) {
		errs.Add(field.Invalid(field.At("host"), a.Host, "the APIs' public host name, e.g. api.example.com"))
	}
	if a.TLSSecret == "" {
		errs.Add(field.Required(field.At("tlsSecret"), "the host's certificate (kubernetes.io/tls): the gateway serves TLS only"))
	}
	if !strings.HasPrefix(a.Tokens.Issuer, "https://") {
		errs.Add(field.Invalid(field.At("tokens.issuer"), a.Tokens.Issuer, "the Keycloak realm's https:// URL (the identity component's issuer)"))
	}
	switch {
	case a.Engine == EngineKong && !strings.Contains(a.Tokens.PublicKey, "BEGIN PUBLIC KEY"):
		errs.Add(field.Invalid(field.At("tokens.publicKey"), nil, "the realm's RSA public key (PEM, BEGIN PUBLIC KEY): Kong's jwt plugin checks tokens with it"))
	case a.Engine == EngineIstio && (a.Istio == nil || !dnsLabel.MatchString(a.Istio.Name) || !dnsLabel.MatchString(a.Istio.Namespace)):
		errs.Add(field.Required(field.At("istio"), "name and namespace of the mesh gateway the routes bind to (engine istio)"))
	case a.Engine == EngineIstio && a.Kong != nil:
		errs.Add(field.Invalid(field.At("kong"), nil, "set only with engine kong"))
	}
	if k := a.Kong; k != nil {
		errs.Merge(field.At("kong"), k.Validate(KongChart, addon.Image{Key: "image", Ref: k.Image}, addon.Image{Key: "controllerImage", Ref: k.ControllerImage}))
	}
	for i, c := range a.InternalCIDRs {
		if _, _, err := net.ParseCIDR(c); err != nil {
			errs.Add(field.Invalid(field.At("internalCIDRs[%d]", i), c, "a CIDR, e.g. 10.0.0.0/8"))
		}
	}
	if len(a.APIs) == 0 {
		errs.Add(field.Required(field.At("apis"), "at least one API product"))
	}
	apis := map[string]API{}
	for i, api := range a.APIs {
		errs = append(errs, a.validateAPI(field.At("apis[%d]", i), api, apis[api.Name].Name != "")...)
		apis[api.Name] = api
	}
	a.validateConsumers(&errs, apis)
	if c := a.Catalog; c != nil {
		errs.Merge(nil, c.validate())
	}
	if k := a.KubeAPI; k != nil {
		if !hostName.MatchString(k.Host) || k.Host == a.Host {
			errs.Add(field.Invalid(field.At("kubeAPI.host"), k.Host, "a host name of its own for the API server (e.g. kube.example.com)"))
		}
		if len(k.AllowedCIDRs) == 0 {
			errs.Add(field.Required(field.At("kubeAPI.allowedCidrs"), "the networks allowed to reach the API server"))
		}
		for i, c := range k.AllowedCIDRs {
			if _, n, err := net.ParseCIDR(c); err != nil {
				errs.Add(field.Invalid(field.At("kubeAPI.allowedCidrs[%d]", i), c, "a CIDR"))
			} else if ones, _ := n.Mask.Size(); ones == 0 {
				errs.Add(field.Invalid(field.At("kubeAPI.allowedCidrs[%d]", i), c, "the whole internet; name the networks allowed to reach the API server"))
			}
		}
	}
	return errs.OrNil()
}

// validateAPI checks one API product at p; duplicate says its name was used before.
func (a Args) validateAPI(p *field.Path, api API, duplicate bool) field.ErrorList {
	var errs field.ErrorList
	if !dnsLabel.MatchString(api.Name) || duplicate {
		errs.Add(field.Invalid(p.Child("name"), api.Name, "unique lower-case letters, digits and dashes"))
	}
	errs.Add(field.Enum(p.Child("visibility"), api.Visibility, External, Internal))
	if api.Visibility == External && api.Anonymous {
		errs.Add(field.Invalid(p.Child("anonymous"), nil, "a public route without authentication; remove anonymous (callers bring a Keycloak token) or make the API internal"))
	}
	if api.Visibility == External && len(api.Plans) == 0 {
		errs.Add(field.Required(p.Child("plans"), "a public API needs at least one plan with limits (requestsPerMinute, requestsPerMonth, ...)"))
	}
	if len(api.Versions) == 0 {
		errs.Add(field.Required(p.Child("versions"), "at least one"))
	}
	plans := map[string]bool{}
	for j, plan := range api.Plans {
		q := p.Child("plans").Index(j)
		switch {
		case !dnsLabel.MatchString(plan.Name) || plans[plan.Name]:
			errs.Add(field.Invalid(q.Child("name"), plan.Name, "unique lower-case letters, digits and dashes"))
		case !plan.Limited():
			errs.Add(field.Invalid(q, nil, "no limits: give requestsPerSecond, requestsPerMinute, requestsPerDay or requestsPerMonth"))
		case a.Engine == EngineIstio && (plan.RequestsPerDay > 0 || plan.RequestsPerMonth > 0):
			errs.Add(field.Invalid(q, nil, "daily and monthly quotas per consumer need the kong engine (Istio's local rate limit counts per gateway pod, per second or minute)"))
		}
		plans[plan.Name] = true
	}
	seen := map[string]bool{}
	for j, v := range api.Versions {
		q := p.Child("versions").Index(j)
		if !version.MatchString(v.Version) || seen[v.Version] {
			errs.Add(field.Invalid(q.Child("version"), v.Version, "unique, lower-case letters, digits, dots and dashes (it is in the path)"))
		}
		if !dnsLabel.MatchString(v.Upstream.Service) || !dnsLabel.MatchString(v.Upstream.Namespace) || v.Upstream.Port < 1 || v.Upstream.Port > 65535 {
			errs.Add(field.Required(q.Child("upstream"), "service, namespace and port of the Kubernetes Service behind it"))
		}
		if _, err := catalog.LoadSpec(context.Background(), a.spec(v)); err != nil {
			errs.Add(field.Invalid(q.Child("spec"), v.Spec, err.Error()))
		}
		seen[v.Version] = true
	}
	return errs
}

func (a Args) validateConsumers(errs *field.ErrorList, apis map[string]API) {
	clients := map[string]bool{}
	for i, c := range a.Consumers {
		p := field.At("consumers[%d]", i)
		if c.ClientID == "" || clients[c.ClientID] {
			errs.Add(field.Invalid(p.Child("clientId"), c.ClientID, "the Keycloak client, once"))
		}
		if len(c.APIs) == 0 {
			errs.Add(field.Required(p.Child("apis"), "at least one"))
		}
		for j, name := range c.APIs {
			if api, ok := apis[name]; !ok {
				errs.Add(field.Invalid(p.Child("apis").Index(j), name, "not one of apis"))
			} else if !slices.ContainsFunc(api.Plans, func(plan catalog.Plan) bool { return plan.Name == c.Plan }) {
				errs.Add(field.Invalid(p.Child("plan"), c.Plan, fmt.Sprintf("not a plan of %s", name)))
			}
		}
		clients[c.ClientID] = true
	}
}

// Engine is the gateway that serves the routes.
type Engine string

// The engines.
const (
	EngineKong  Engine = "kong"
	EngineIstio Engine = "istio"
)

// Visibility says who may reach an API.
type Visibility string

// The visibilities: through the public host, or from inside (InternalCIDRs) only.
const (
	External Visibility = "external"
	Internal Visibility = "internal"
)

func (a Args) withDefaults() Args {
	if a.Engine == "" {
		a.Engine = "kong"
	}
	if a.Namespace == "" {
		a.Namespace = "kplane-gateway"
	}
	if len(a.InternalCIDRs) == 0 {
		a.InternalCIDRs = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
	}
	if a.Tokens.JWKSURI == "" && a.Tokens.Issuer != "" {
		a.Tokens.JWKSURI = strings.TrimSuffix(a.Tokens.Issuer, "/") + "/protocol/openid-connect/certs"
	}
	return a
}

func (a Args) spec(v Version) string {
	if filepath.IsAbs(v.Spec) || a.SpecsDir == "" {
		return v.Spec
	}
	return filepath.Join(a.SpecsDir, v.Spec)
}

// Path is where a version is served on the host.
func Path(api, version string) string { return "/" + api + "/" + version }

// Gateway is the published gateway.
type Gateway struct {
	pulumi.ResourceState
	// URL of the APIs; CatalogURL of the portal (empty without catalog).
	URL        pulumi.StringOutput `pulumi:"url"`
	CatalogURL pulumi.StringOutput `pulumi:"catalogURL"`
}

// NewGateway validates args (every OpenAPI document read and checked), then registers the gateway's
// namespace, Kong's chart (when asked), the routes with token validation, plans and consumers,
// and the catalog.
func NewGateway(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Gateway, error) {
	r := &Gateway{}
	args, err := component.Register(ctx, "Gateway", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	a := args.withDefaults()
	parent := pulumi.Parent(r)
	ns, err := corev1.NewNamespace(ctx, name+"-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(a.Namespace),
		Labels: pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy), "pod-security.kubernetes.io/enforce": pulumi.String("restricted"),
			"pod-security.kubernetes.io/enforce-version": pulumi.String(k8sobj.PodSecurityVersion)}}}, parent)
	if err != nil {
		return nil, err
	}
	deps := []pulumi.Resource{ns}
	if k := a.Kong; k != nil {
		kong, err := helmv4.NewChart(ctx, name+"-kong", k.Release(KongChart, "kong", a.Namespace, a.kongValues()),
			parent, pulumi.DependsOn(deps))
		if err != nil {
			return nil, err
		}
		deps = append(deps, kong)
	}
	objs := a.KongObjects()
	if a.Engine == "istio" {
		objs = a.IstioObjects()
	}
	if a.Catalog != nil {
		cat, err := a.catalogObjects()
		if err != nil {
			return nil, err
		}
		objs = append(objs, cat...)
	}
	for _, obj := range objs {
		md := obj["metadata"].(map[string]any)
		id := fmt.Sprintf("%s-%s-%s", name, strings.ToLower(obj["kind"].(string)), md["name"])
		if ns, ok := md["namespace"].(string); ok {
			id = fmt.Sprintf("%s-%s-%s-%s", name, ns, strings.ToLower(obj["kind"].(string)), md["name"])
		}
		if _, err := k8sobj.Object(ctx, id, obj, parent, pulumi.DependsOn(deps)); err != nil {
			return nil, err
		}
	}
	r.URL = pulumi.String("https://" + a.Host).ToStringOutput()
	r.CatalogURL = pulumi.String("").ToStringOutput()
	if a.Catalog != nil {
		r.CatalogURL = pulumi.String("https://" + a.Catalog.Host).ToStringOutput()
	}
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"url": r.URL, "catalogURL": r.CatalogURL})
}

// kongValues: DB-less Kong behind its ingress controller, images by digest, TLS only on the
// proxy, the admin API inside the pod only, restricted pods.
func (a Args) kongValues() map[string]any {
	k := a.Kong
	// unifiedRepoTag takes a whole reference: the chart's repository:tag cannot hold a digest.
	return map[string]any{
		"image":             map[string]any{"unifiedRepoTag": k.Image},
		"env":               map[string]any{"database": "off", "nginx_worker_processes": "2"},
		"admin":             map[string]any{"enabled": false},
		"proxy":             map[string]any{"http": map[string]any{"enabled": true}, "tls": map[string]any{"enabled": true}},
		"ingressController": map[string]any{"enabled": true, "installCRDs": false, "image": map[string]any{"unifiedRepoTag": k.ControllerImage}},
		"securityContext":   map[string]any{"runAsNonRoot": true, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
		"containerSecurityContext": map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
			"capabilities": map[string]any{"drop": []any{"ALL"}}},
	}
}
