// Package mesh is kplane's service mesh: Istio installed by revision from its official charts,
// teams onboarded with sidecar injection, STRICT mutual TLS and deny-by-default authorization
// built from each service's declared callers, typed routing (canary weights, header routes,
// retries, timeouts, circuit breaking, fault injection, mirroring), workload certificate
// lifetimes and a plugged-in CA, and the observability add-ons wired to each other.
package mesh

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/component"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

// The official Istio charts, pinned (one version for the three).
const istioRepo = "https://istio-release.storage.googleapis.com/charts"

var (
	BaseChart    = addon.Chart{Repo: istioRepo, Name: "base", Version: "1.29.2"}
	IstiodChart  = addon.Chart{Repo: istioRepo, Name: "istiod", Version: "1.29.2"}
	GatewayChart = addon.Chart{Repo: istioRepo, Name: "gateway", Version: "1.29.2"}
	CNIChart     = addon.Chart{Repo: istioRepo, Name: "cni", Version: "1.29.2"}
)

// CNINamespace runs Istio's CNI node agent: it sets up each pod's traffic redirection, so
// sidecar-injected pods need no privileged init container and pass the restricted Pod Security
// level of team namespaces. It needs host access, so it runs in kube-system, not istio-system.
const CNINamespace = "kube-system"

// SystemNamespace is Istio's root namespace: istiod runs there and its selector-less
// policies apply mesh-wide.
const SystemNamespace = "istio-system"

// Args: the mesh of one cluster.
type Args struct {
	// Revisions of istiod installed side by side (one normally; two during a canary upgrade).
	Revisions []Revision `json:"revisions"`
	// Tag (default "stable") is the revision tag namespaces are labelled with; it points at
	// StableRevision (default: the first). Moving it moves every namespace at the next restart.
	Tag            string `json:"tag,omitempty"`
	StableRevision string `json:"stableRevision,omitempty"`
	// BaseChart installs Istio's CRDs and cluster roles, CNIChart the CNI node agent (default:
	// the official charts, pinned).
	BaseChart addon.Chart `json:"baseChart,omitempty"`
	CNIChart  addon.Chart `json:"cniChart,omitempty"`
	// CNI is the CNI node agent's image and the nodes' CNI folders.
	CNI CNI `json:"cni"`
	// TrustDomain of workload identities (default cluster.local).
	TrustDomain string `json:"trustDomain,omitempty"`
	// AllowAnyEgress lets workloads reach hosts outside the mesh's registry (default: only
	// registered services and ServiceEntries: REGISTRY_ONLY).
	AllowAnyEgress bool `json:"allowAnyEgress,omitempty"`
	// Certificates: workload certificate lifetimes and the CA.
	Certificates Certificates `json:"certificates,omitempty"`
	// Gateways: ingress (or egress) gateways from the gateway chart.
	Gateways []Gateway `json:"gateways,omitempty"`
	// Observability: Prometheus, Grafana, Kiali and Jaeger wired to each other (nil: none).
	Observability *Observability `json:"observability,omitempty"`
	// Teams onboarded into the mesh.
	Teams []Team `json:"teams,omitempty"`
}

// CNI is Istio's CNI node agent on every node: it installs the istio-cni plugin into the node's
// CNI configuration, chained after the cluster's network.
type CNI struct {
	// Image of install-cni by digest (<registry>/install-cni@sha256:...): the agent and the
	// plugin it installs.
	Image string `json:"image"`
	// BinDir and ConfDir are the nodes' CNI plugin and configuration folders (default
	// /opt/cni/bin and /etc/cni/net.d; k3s, for one, keeps them elsewhere).
	BinDir  string `json:"binDir,omitempty"`
	ConfDir string `json:"confDir,omitempty"`
}

func (c CNI) validate() field.ErrorList {
	var errs field.ErrorList
	if !addon.Pinned(c.Image) {
		errs.Add(field.Invalid(field.At("cni.image"), c.Image, "pin Istio's CNI node agent by digest (<registry>/install-cni@sha256:...)"))
	}
	for key, dir := range map[string]string{"cni.binDir": c.BinDir, "cni.confDir": c.ConfDir} {
		if dir != "" && (!path.IsAbs(dir) || path.Clean(dir) != dir) {
			errs.Add(field.Invalid(field.At("%s", key), dir, "the nodes' folder as a clean absolute path, e.g. /opt/cni/bin"))
		}
	}
	return errs
}

// values are the CNI chart's: the pinned image, the folders, and a memory limit on the node
// agent (a leak cannot take the node down: CIS 5.7 / kplane-resource-limits).
func (c CNI) values() map[string]any {
	return map[string]any{"image": c.Image, "cniBinDir": cmp.Or(c.BinDir, "/opt/cni/bin"), "cniConfDir": cmp.Or(c.ConfDir, "/etc/cni/net.d"),
		"resources": map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "100Mi"}, "limits": map[string]any{"memory": "512Mi"}}}
}

// Revision is one istiod control plane.
type Revision struct {
	// Name, e.g. "1-29-2" (lower-case letters, digits and dashes).
	Name string `json:"name"`
	// PilotImage and ProxyImage by digest (istio/pilot@sha256:..., istio/proxyv2@sha256:...).
	PilotImage string `json:"pilotImage"`
	ProxyImage string `json:"proxyImage"`
	// Chart of istiod (default: the official chart, pinned); Values are merged over kplane's.
	Chart  addon.Chart    `json:"chart,omitempty"`
	Values map[string]any `json:"values,omitempty"`
}

// Gateway is an Istio gateway deployment.
type Gateway struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// ServiceType (default LoadBalancer; ClusterIP for an internal gateway behind another).
	ServiceType string `json:"serviceType,omitempty"`
	// Revision (default: the tag).
	Revision string         `json:"revision,omitempty"`
	Chart    addon.Chart    `json:"chart,omitempty"`
	Values   map[string]any `json:"values,omitempty"`
}

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// Validate names the argument and the fix; nothing is created when it fails.
func (a Args) Validate() error {
	var errs field.ErrorList
	if len(a.Revisions) == 0 {
		errs.Add(field.Invalid(field.At("revisions"), nil, "at least one istiod revision (name, pilotImage, proxyImage)"))
	}
	revs := map[string]bool{}
	for i, r := range a.Revisions {
		switch {
		case !dnsLabel.MatchString(r.Name) || revs[r.Name] || r.Name == "default":
			errs.Add(field.Invalid(field.At("revisions[%d].name", i), r.Name, "unique lower-case letters, digits and dashes, e.g. 1-29-2 (not \"default\")"))
		case !addon.Pinned(r.PilotImage):
			errs.Add(field.Invalid(field.At("revisions[%d].pilotImage", i), r.PilotImage, "pin istiod by digest (<registry>/pilot@sha256:...)"))
		case !addon.Pinned(r.ProxyImage):
			errs.Add(field.Invalid(field.At("revisions[%d].proxyImage", i), r.ProxyImage, "pin the sidecar proxy by digest (<registry>/proxyv2@sha256:...)"))
		}
		errs.Merge(field.At("revisions[%d].chart", i), r.Chart.Or(IstiodChart).Validate())
		revs[r.Name] = true
	}
	if a.StableRevision != "" && !revs[a.StableRevision] {
		errs.Add(field.Invalid(field.At("stableRevision"), a.StableRevision, fmt.Sprintf("not one of revisions (%s)", strings.Join(slices.Sorted(maps.Keys(revs)), ", "))))
	}
	if a.Tag != "" && (!dnsLabel.MatchString(a.Tag) || revs[a.Tag]) {
		errs.Add(field.Invalid(field.At("tag"), a.Tag, "lower-case letters, digits and dashes, not a revision's name"))
	}
	errs.Merge(field.At("baseChart"), a.BaseChart.Or(BaseChart).Validate())
	errs.Merge(field.At("cniChart"), a.CNIChart.Or(CNIChart).Validate())
	errs = append(errs, a.CNI.validate()...)
	errs.Merge(nil, a.Certificates.validate())
	gws := map[string]bool{}
	for i, g := range a.Gateways {
		switch {
		case !dnsLabel.MatchString(g.Name) || gws[g.Name]:
			errs.Add(field.Invalid(field.At("gateways[%d].name", i), g.Name, "unique lower-case letters, digits and dashes"))
		case !dnsLabel.MatchString(g.Namespace):
			errs.Add(field.Invalid(field.At("gateways[%d].namespace", i), g.Namespace, "required (a namespace of its own, e.g. istio-ingress)"))
		case g.ServiceType != "" && !slices.Contains([]string{"LoadBalancer", "ClusterIP", "NodePort"}, g.ServiceType):
			errs.Add(field.Invalid(field.At("gateways[%d].serviceType", i), g.ServiceType, "LoadBalancer, ClusterIP or NodePort"))
		case g.Revision != "" && !revs[g.Revision]:
			errs.Add(field.Invalid(field.At("gateways[%d].revision", i), g.Revision, "not one of revisions"))
		}
		errs.Merge(field.At("gateways[%d].chart", i), g.Chart.Or(GatewayChart).Validate())
		gws[g.Name] = true
	}
	if o := a.Observability; o != nil {
		errs.Merge(nil, o.validate())
	}
	errs.Merge(nil, validateTeams(a.Teams, revs, gws))
	return errs.OrNil()
}

func (a Args) withDefaults() Args {
	if a.Tag == "" {
		a.Tag = "stable"
	}
	if a.StableRevision == "" && len(a.Revisions) > 0 {
		a.StableRevision = a.Revisions[0].Name
	}
	if a.TrustDomain == "" {
		a.TrustDomain = "cluster.local"
	}
	a.Certificates = a.Certificates.withDefaults()
	for i := range a.Gateways {
		if a.Gateways[i].ServiceType == "" {
			a.Gateways[i].ServiceType = "LoadBalancer"
		}
	}
	return a
}

// Mesh is the installed mesh.
type Mesh struct {
	pulumi.ResourceState
	// Tag is the revision label value of meshed namespaces (istio.io/rev).
	Tag pulumi.StringOutput `pulumi:"tag"`
}

// NewMesh validates args, then installs Istio's CRDs, each istiod revision (the stable one with
// the tag), the mesh-wide STRICT PeerAuthentication, the gateways, the observability add-ons
// and the teams.
func NewMesh(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Mesh, error) {
	r := &Mesh{}
	args, err := component.Register(ctx, "Mesh", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	a := args.withDefaults()
	parent := pulumi.Parent(r)
	ns, err := corev1.NewNamespace(ctx, name+"-istio-system", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(SystemNamespace),
		Labels: restricted(pulumi.StringMap{})}}, parent)
	if err != nil {
		return nil, err
	}
	// The CRDs as their own step: everything else waits for them.
	base, err := helmv4.NewChart(ctx, name+"-base", a.BaseChart.Or(BaseChart).Args("istio-base", SystemNamespace,
		map[string]any{"defaultRevision": a.StableRevision}), parent, pulumi.DependsOn([]pulumi.Resource{ns}))
	if err != nil {
		return nil, err
	}
	cni, err := helmv4.NewChart(ctx, name+"-cni", a.CNIChart.Or(CNIChart).Args("istio-cni", CNINamespace, a.CNI.values()), parent,
		pulumi.DependsOn([]pulumi.Resource{base}))
	if err != nil {
		return nil, err
	}
	deps := []pulumi.Resource{base, cni}
	if ca := a.Certificates.CA; ca != nil {
		res, err := ca.resources(ctx, name, parent, pulumi.DependsOn([]pulumi.Resource{ns, base}))
		if err != nil {
			return nil, err
		}
		deps = append(deps, res...)
	}
	var istiods []pulumi.Resource
	for _, rev := range a.Revisions {
		istiod, err := helmv4.NewChart(ctx, name+"-istiod-"+rev.Name, rev.Chart.Or(IstiodChart).Args("istiod-"+rev.Name, SystemNamespace,
			addon.Merge(a.istiodValues(rev), rev.Values)), parent, pulumi.DependsOn(deps))
		if err != nil {
			return nil, err
		}
		istiods = append(istiods, istiod)
	}
	after := pulumi.DependsOn(append([]pulumi.Resource{base}, istiods...))
	if _, err := k8sobj.Object(ctx, name+"-mtls-strict", map[string]any{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": "default", "namespace": SystemNamespace, "labels": managed()},
		"spec":     map[string]any{"mtls": map[string]any{"mode": "STRICT"}}}, parent, after); err != nil {
		return nil, err
	}
	if o := a.Observability; o != nil {
		if err := a.observability(ctx, name, parent, after); err != nil {
			return nil, err
		}
	}
	for _, g := range a.Gateways {
		gns, err := corev1.NewNamespace(ctx, name+"-gateway-ns-"+g.Name, &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(g.Namespace),
			Labels: restricted(pulumi.StringMap{"istio.io/rev": pulumi.String(a.revisionOf(g.Revision))})}},
			parent, pulumi.DependsOn(istiods))
		if err != nil {
			return nil, err
		}
		if _, err := helmv4.NewChart(ctx, name+"-gateway-"+g.Name, g.Chart.Or(GatewayChart).Args(g.Name, g.Namespace,
			addon.Merge(map[string]any{"revision": a.revisionOf(g.Revision), "service": map[string]any{"type": g.ServiceType},
				// The chart's own pod security context plus the seccomp profile the restricted
				// Pod Security level of the namespace requires.
				"securityContext": map[string]any{"seccompProfile": map[string]any{"type": "RuntimeDefault"},
					"sysctls": []any{map[string]any{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}}}}, g.Values)),
			parent, pulumi.DependsOn([]pulumi.Resource{gns})); err != nil {
			return nil, err
		}
	}
	if err := a.teams(ctx, name, parent, after); err != nil {
		return nil, err
	}
	r.Tag = pulumi.String(a.Tag).ToStringOutput()
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"tag": r.Tag})
}

// revisionOf is the istio.io/rev value: a revision's name, or the tag.
func (a Args) revisionOf(rev string) string {
	if rev == "" {
		return a.Tag
	}
	return rev
}

// restricted adds kplane's label and the restricted Pod Security level to a namespace's labels.
func restricted(labels pulumi.StringMap) pulumi.StringMap {
	labels[wellknown.ManagedByLabel] = pulumi.String(wellknown.ManagedBy)
	labels["pod-security.kubernetes.io/enforce"] = pulumi.String("restricted")
	labels["pod-security.kubernetes.io/enforce-version"] = pulumi.String(k8sobj.PodSecurityVersion)
	return labels
}

func managed() map[string]any { return map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy} }

// istiodValues: the revision (the stable one carries the tag), images by digest, mesh config
// (strict egress, access logs, tracing to Jaeger), certificate lifetimes, restricted pods.
func (a Args) istiodValues(rev Revision) map[string]any {
	mesh := map[string]any{
		"trustDomain":           a.TrustDomain,
		"accessLogFile":         "/dev/stdout",
		"accessLogEncoding":     "JSON",
		"enablePrometheusMerge": true,
		"outboundTrafficPolicy": map[string]any{"mode": map[bool]string{true: "ALLOW_ANY", false: "REGISTRY_ONLY"}[a.AllowAnyEgress]},
		"defaultConfig": map[string]any{"holdApplicationUntilProxyStarts": true,
			"proxyMetadata": a.Certificates.proxyMetadata()},
	}
	if o := a.Observability; o != nil && o.has("jaeger") {
		o := o.withDefaults()
		mesh["extensionProviders"] = []any{map[string]any{"name": "jaeger", "zipkin": map[string]any{
			"service": "jaeger-collector." + o.Namespace + ".svc.cluster.local", "port": 9411}}}
		mesh["defaultProviders"] = map[string]any{"tracing": []any{"jaeger"}}
	}
	tags := []any{}
	if rev.Name == a.StableRevision {
		tags = append(tags, a.Tag)
	}
	return map[string]any{
		"revision":     rev.Name,
		"revisionTags": tags,
		"image":        rev.PilotImage,
		"cni":          map[string]any{"enabled": true},
		// istio-system enforces the restricted Pod Security level; the chart sets no seccomp
		// profile unless asked, and without one istiod's pods are refused.
		"seccompProfile": map[string]any{"type": "RuntimeDefault"},
		// The chart's requests, and a memory limit.
		"resources":    map[string]any{"requests": map[string]any{"cpu": "500m", "memory": "2Gi"}, "limits": map[string]any{"memory": "4Gi"}},
		"env":          a.Certificates.istiodEnv(),
		"global":       map[string]any{"proxy": map[string]any{"image": rev.ProxyImage}, "proxy_init": map[string]any{"image": rev.ProxyImage}},
		"meshConfig":   mesh,
		"autoscaleMin": 2,
		"pdb":          map[string]any{"minAvailable": 1},
		// istiod reads its injection template and mesh config when it starts, from ConfigMaps the
		// chart mounts as optional: without them it starts with no injector and never adds one.
		// Helm creates ConfigMaps before Deployments; Pulumi creates a chart's objects at once
		// unless told (the kpt depends-on annotation the provider reads).
		"deploymentAnnotations": map[string]any{"config.kubernetes.io/depends-on": strings.Join([]string{
			"/namespaces/" + SystemNamespace + "/ConfigMap/istio-sidecar-injector-" + rev.Name,
			"/namespaces/" + SystemNamespace + "/ConfigMap/istio-" + rev.Name,
			"/namespaces/" + SystemNamespace + "/ConfigMap/values-" + rev.Name}, ",")},
	}
}

// duration parses Go-style durations ("24h", "90m") that Istio accepts.
// duration parses the positive duration at p.
func duration(p *field.Path, v string) (time.Duration, *field.Error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, field.Invalid(p, v, "a positive duration such as 24h or 1h30m")
	}
	return d, nil
}

// checkDuration is duration's error.
func checkDuration(p *field.Path, v string) *field.Error {
	_, bad := duration(p, v)
	return bad
}
