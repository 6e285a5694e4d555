package mesh

import (
	"maps"
	"slices"
	"strings"

	"github.com/kplane/kplane/components/identity"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/internal/field"
	"github.com/kplane/kplane/internal/k8sobj"
)

// The add-ons' official charts, pinned.
var (
	PrometheusChart = addon.Chart{Repo: "https://prometheus-community.github.io/helm-charts", Name: "prometheus", Version: "27.2.0"}
	GrafanaChart    = addon.Chart{Repo: "https://grafana-community.github.io/helm-charts", Name: "grafana", Version: "12.11.1"}
	KialiChart      = addon.Chart{Repo: "https://kiali.org/helm-charts", Name: "kiali-server", Version: "2.24.0"}
	JaegerChart     = addon.Chart{Repo: "https://jaegertracing.github.io/helm-charts", Name: "jaeger", Version: "3.3.3"}
)

// Observability: Prometheus scrapes the mesh (istiod, proxies through Istio's merged metrics)
// and holds the certificate alerts; Jaeger receives the proxies' traces; Grafana shows both
// with Istio's dashboards; Kiali draws the mesh from Prometheus, links traces and dashboards.
type Observability struct {
	// Namespace of the add-ons (default istio-observability).
	Namespace string `json:"namespace,omitempty"`
	// TraceSampling: percent of requests traced (default 1).
	TraceSampling float64 `json:"traceSampling,omitempty"`
	// Retention of Prometheus (default 15d).
	Retention string `json:"retention,omitempty"`
	// GrafanaURL and KialiURL: the public URLs people open (links between them).
	GrafanaURL string `json:"grafanaURL,omitempty"`
	KialiURL   string `json:"kialiURL,omitempty"`
	// GrafanaAdminSecret names a Secret (admin-user, admin-password) in the namespace.
	GrafanaAdminSecret string `json:"grafanaAdminSecret"`
	// Login: people log in to Grafana and Kiali through the identity realm (nil: Grafana's
	// admin and Kiali's ServiceAccount tokens only). The composed platform fills it.
	Login *Login `json:"login,omitempty"`
	// Without lists add-ons kplane does not install (an existing Jaeger, no Kiali): kiali, jaeger.
	Without []string `json:"without,omitempty"`
	// Charts and values per chart ("prometheus", "grafana", "kiali", "jaeger").
	Prometheus addon.Chart               `json:"prometheus,omitempty"`
	Grafana    addon.Chart               `json:"grafana,omitempty"`
	Kiali      addon.Chart               `json:"kiali,omitempty"`
	Jaeger     addon.Chart               `json:"jaeger,omitempty"`
	Values     map[string]map[string]any `json:"values,omitempty"`
}

// Login is the realm the add-ons trust: its issuer, and the public PKCE client of each tool
// (the identity realm's tools, whose tokens carry a "roles" claim: admin, edit, view).
type Login struct {
	Issuer        string `json:"issuer"`
	GrafanaClient string `json:"grafanaClient,omitempty"`
	KialiClient   string `json:"kialiClient,omitempty"`
}

// optional add-ons (Without); Prometheus and Grafana are the mesh's view and always installed.
var optionalAddOns = []string{"jaeger", "kiali"}

func (o Observability) has(addOn string) bool { return !slices.Contains(o.Without, addOn) }

func (o Observability) withDefaults() Observability {
	if o.Namespace == "" {
		o.Namespace = "istio-observability"
	}
	if o.TraceSampling == 0 {
		o.TraceSampling = 1
	}
	if o.Retention == "" {
		o.Retention = "15d"
	}
	o.Prometheus, o.Grafana, o.Kiali, o.Jaeger = o.Prometheus.Or(PrometheusChart), o.Grafana.Or(GrafanaChart), o.Kiali.Or(KialiChart), o.Jaeger.Or(JaegerChart)
	return o
}

func (o Observability) validate() error {
	var errs field.ErrorList
	o = o.withDefaults()
	switch {
	case !dnsLabel.MatchString(o.Namespace):
		errs.Add(field.Invalid(field.At("observability.namespace"), o.Namespace, "a namespace name"))
	case o.TraceSampling < 0 || o.TraceSampling > 100:
		errs.Add(field.Invalid(field.At("observability.traceSampling"), o.TraceSampling, "a percentage, 0 to 100"))
	case o.GrafanaAdminSecret == "":
		errs.Add(field.Required(field.At("observability.grafanaAdminSecret"), "a Secret with admin-user and admin-password"))
	case o.GrafanaURL != "" && !strings.HasPrefix(o.GrafanaURL, "https://"):
		errs.Add(field.Invalid(field.At("observability.grafanaURL"), o.GrafanaURL, "Grafana's public https:// URL"))
	case o.KialiURL != "" && !strings.HasPrefix(o.KialiURL, "https://"):
		errs.Add(field.Invalid(field.At("observability.kialiURL"), o.KialiURL, "Kiali's public https:// URL"))
	}
	for i, w := range o.Without {
		if !slices.Contains(optionalAddOns, w) {
			errs.Add(field.Invalid(field.At("observability.without[%d]", i), w, "kplane may leave out jaeger or kiali"))
		}
	}
	if l := o.Login; l != nil {
		switch {
		case !strings.HasPrefix(l.Issuer, "https://"):
			errs.Add(field.Invalid(field.At("observability.login.issuer"), l.Issuer, "the realm's https:// issuer"))
		case l.GrafanaClient == "" || (o.has("kiali") && l.KialiClient == ""):
			errs.Add(field.Required(field.At("observability.login"), "grafanaClient and kialiClient: the realm's tool clients"))
		case o.GrafanaURL == "" || (o.has("kiali") && o.KialiURL == ""):
			errs.Add(field.Required(field.At("observability.grafanaURL"), "grafanaURL and kialiURL: the public URLs the realm redirects back to"))
		}
	}
	for _, c := range []struct {
		key   string
		chart addon.Chart
	}{{"prometheus", o.Prometheus}, {"grafana", o.Grafana}, {"kiali", o.Kiali}, {"jaeger", o.Jaeger}} {
		errs.Merge(field.At("observability.%s", c.key), c.chart.Validate())
	}
	for _, k := range slices.Sorted(maps.Keys(o.Values)) {
		if k != "prometheus" && k != "grafana" && k != "kiali" && k != "jaeger" {
			errs.Add(field.Invalid(field.At("observability.values").Key(k), nil, "values are per chart: prometheus, grafana, kiali or jaeger"))
		}
	}
	return errs.OrNil()
}

// In-cluster addresses of the add-ons (their releases are named after the chart).
func (o Observability) prometheusURL() string {
	return "http://prometheus-server." + o.Namespace + ".svc"
}
func (o Observability) jaegerQuery() string {
	return "http://jaeger-query." + o.Namespace + ".svc:16686"
}
func (o Observability) grafanaURL() string { return "http://grafana." + o.Namespace + ".svc" }

// PrometheusValues: Istio's metrics (pods annotated by Istio's metrics merge), the certificate
// alerts, retention.
func (o Observability) PrometheusValues(alertDays int) map[string]any {
	var rules map[string]any
	if err := yaml.Unmarshal([]byte(AlertRules(alertDays)), &rules); err != nil {
		panic(err) // AlertRules is ours: a test renders it
	}
	return map[string]any{
		"server":                 map[string]any{"retention": o.Retention, "persistentVolume": map[string]any{"enabled": true, "size": "50Gi"}},
		"serverFiles":            map[string]any{"alerting_rules.yml": rules},
		"kube-state-metrics":     map[string]any{"enabled": true},
		"prometheus-pushgateway": map[string]any{"enabled": false},
	}
}

// JaegerValues: all-in-one with a Zipkin collector port (what the proxies send to).
func (o Observability) JaegerValues() map[string]any {
	return map[string]any{
		"provisionDataStore": map[string]any{"cassandra": false},
		"allInOne":           map[string]any{"enabled": true, "extraEnv": []any{map[string]any{"name": "COLLECTOR_ZIPKIN_HOST_PORT", "value": ":9411"}}},
		"storage":            map[string]any{"type": "memory"},
		"agent":              map[string]any{"enabled": false}, "collector": map[string]any{"enabled": false}, "query": map[string]any{"enabled": false},
	}
}

// IstioDashboards are grafana.com's Istio dashboards (published by the Istio project) by id.
var IstioDashboards = map[string]int{"istio-mesh": 7639, "istio-service": 7636, "istio-workload": 7630, "istio-control-plane": 7645, "istio-performance": 11829}

// GrafanaValues: Prometheus and Jaeger as data sources, Istio's dashboards, the admin from a Secret.
func (o Observability) GrafanaValues() map[string]any {
	dashboards := map[string]any{}
	for name, id := range IstioDashboards {
		dashboards[name] = map[string]any{"gnetId": id, "datasource": "Prometheus"}
	}
	sources := []any{map[string]any{"name": "Prometheus", "type": "prometheus", "uid": "prometheus", "url": o.prometheusURL(), "access": "proxy", "isDefault": true}}
	if o.has("jaeger") {
		sources = append(sources, map[string]any{"name": "Jaeger", "type": "jaeger", "uid": "jaeger", "url": o.jaegerQuery(), "access": "proxy"})
	}
	values := map[string]any{
		"admin":       map[string]any{"existingSecret": o.GrafanaAdminSecret, "userKey": "admin-user", "passwordKey": "admin-password"},
		"datasources": map[string]any{"datasources.yaml": map[string]any{"apiVersion": 1, "datasources": sources}},
		"dashboardProviders": map[string]any{"dashboardproviders.yaml": map[string]any{"apiVersion": 1, "providers": []any{
			map[string]any{"name": "istio", "folder": "Istio", "type": "file", "disableDeletion": true, "editable": false,
				"options": map[string]any{"path": "/var/lib/grafana/dashboards/istio"}}}}},
		"dashboards": map[string]any{"istio": dashboards},
	}
	if l := o.Login; l != nil {
		values["grafana.ini"] = identity.GrafanaLogin(l.Issuer, l.GrafanaClient, o.GrafanaURL)
	}
	return values
}

// KialiValues: Kiali reads the mesh from Prometheus, links Jaeger and Grafana, logs in with a
// ServiceAccount token (its RBAC decides what a person sees).
func (o Observability) KialiValues() map[string]any {
	grafana := map[string]any{"enabled": true, "internal_url": o.grafanaURL()}
	if o.GrafanaURL != "" {
		grafana["external_url"] = o.GrafanaURL
	}
	auth := map[string]any{"strategy": "token"}
	if l := o.Login; l != nil {
		// Kiali's openid strategy: the realm's token, the user's groups for its RBAC.
		auth = map[string]any{"strategy": "openid", "openid": map[string]any{
			"client_id": l.KialiClient, "issuer_uri": l.Issuer, "username_claim": "preferred_username",
			"scopes": []any{"openid", "profile", "email"}, "disable_rbac": false}}
	}
	return map[string]any{
		"auth":            auth,
		"istio_namespace": SystemNamespace,
		"external_services": map[string]any{
			"prometheus": map[string]any{"url": o.prometheusURL()},
			"tracing":    map[string]any{"enabled": o.has("jaeger"), "provider": "jaeger", "internal_url": o.jaegerQuery(), "use_grpc": false},
			"grafana":    grafana,
		},
	}
}

// observability installs the add-ons and the mesh-wide Telemetry (tracing to Jaeger at the
// sampling rate).
func (a Args) observability(ctx *pulumi.Context, name string, opts ...pulumi.ResourceOption) error {
	o := a.Observability.withDefaults()
	ns, err := corev1.NewNamespace(ctx, name+"-observability-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(o.Namespace),
		Labels: restricted(pulumi.StringMap{"istio.io/rev": pulumi.String(a.Tag)})}}, opts...)
	if err != nil {
		return err
	}
	after := append(append([]pulumi.ResourceOption{}, opts...), pulumi.DependsOn([]pulumi.Resource{ns}))
	for _, c := range []struct {
		release string
		src     addon.Chart
		values  map[string]any
	}{
		{"prometheus", o.Prometheus, o.PrometheusValues(a.Certificates.ExpiryAlertDays)},
		{"jaeger", o.Jaeger, o.JaegerValues()},
		{"grafana", o.Grafana, o.GrafanaValues()},
		{"kiali", o.Kiali, o.KialiValues()},
	} {
		if !o.has(c.release) {
			continue
		}
		if _, err := helmv4.NewChart(ctx, name+"-"+c.release, c.src.Args(c.release, o.Namespace, addon.Merge(c.values, o.Values[c.release])), after...); err != nil {
			return err
		}
	}
	if !o.has("jaeger") {
		return nil
	}
	_, err = k8sobj.Object(ctx, name+"-telemetry", map[string]any{"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
		"metadata": map[string]any{"name": "mesh-default", "namespace": SystemNamespace, "labels": managed()},
		"spec": map[string]any{"tracing": []any{map[string]any{"providers": []any{map[string]any{"name": "jaeger"}}, "randomSamplingPercentage": o.TraceSampling}},
			"accessLogging": []any{map[string]any{"providers": []any{map[string]any{"name": "envoy"}}}}}}, opts...)
	return err
}
