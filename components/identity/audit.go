package identity

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/field"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Audit ships the audit trail to a log store and shows it: Fluent Bit (a DaemonSet) tails the API
// server's audit log on control-plane nodes and Keycloak's container logs, Loki keeps them, and
// Grafana (login through the realm's "grafana" tool client) shows logins, admin actions and
// denied requests. Each comes from its official chart at a pinned version.
type Audit struct {
	// Namespace of the log pipeline (default kplane-audit).
	Namespace string `json:"namespace,omitempty"`
	// Cluster labels this cluster's streams (default the stack's name) so one Loki can hold a fleet.
	Cluster string `json:"cluster,omitempty"`
	// AuditLogPath is the API server's --audit-log-path on control-plane nodes (default
	// /var/log/kubernetes/audit/audit.log, where the hardened cluster puts it).
	AuditLogPath string `json:"auditLogPath,omitempty"`
	// KeycloakNamespace is where the Keycloak pods run (default keycloak): their logs carry the
	// login and admin events (Keycloak started with KeycloakServerOptions).
	KeycloakNamespace string `json:"keycloakNamespace,omitempty"`
	// Retention of audit logs in Loki (default 8760h: one year, ISMS-P 2.9.4 and KISA CA-17 ask
	// for at least a year of access records).
	Retention string `json:"retention,omitempty"`
	// GrafanaURL is Grafana's public URL (its OAuth callback is <GrafanaURL>/login/generic_oauth,
	// one of the grafana tool's redirectURIs).
	GrafanaURL string `json:"grafanaURL"`
	// GrafanaAdminSecret names a Secret in Namespace with keys admin-user and admin-password: the
	// break-glass local administrator (everybody else logs in through the realm).
	GrafanaAdminSecret string `json:"grafanaAdminSecret"`
	// Charts override the pinned official charts (a mirror or a local directory).
	FluentBit addon.Chart `json:"fluentBit,omitempty"`
	Loki      addon.Chart `json:"loki,omitempty"`
	Grafana   addon.Chart `json:"grafana,omitempty"`
	// Values are merged over kplane's values, per chart ("fluent-bit", "loki", "grafana").
	Values map[string]map[string]any `json:"values,omitempty"`
}

// The official charts, pinned.
var (
	FluentBitChart = addon.Chart{Repo: "https://fluent.github.io/helm-charts", Name: "fluent-bit", Version: "0.58.1"}          // Fluent Bit 5.1.1
	LokiChart      = addon.Chart{Repo: "https://grafana-community.github.io/helm-charts", Name: "loki", Version: "18.11.0"}    // Loki 3.7.6
	GrafanaChart   = addon.Chart{Repo: "https://grafana-community.github.io/helm-charts", Name: "grafana", Version: "12.11.1"} // Grafana 13.2.0
)

// KeycloakServerOptions are the Keycloak server options the audit trail needs: JSON log lines
// on the console and login events logged at info (Keycloak logs successful events at debug by
// default, so a Loki fed from its logs would see failures only).
func KeycloakServerOptions() []string {
	return []string{"--log-console-output=json", "--spi-events-listener--jboss-logging--success-level=info",
		"--spi-events-listener--jboss-logging--error-level=warn"}
}

// Log stream labels.
const (
	APIServerAuditJob = "kube-apiserver-audit"
	KeycloakEventsJob = "keycloak-events"
	keycloakEventsLog = "org.keycloak.events"
)

func (au Audit) withDefaults(stack string) Audit {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&au.Namespace, "kplane-audit")
	def(&au.Cluster, stack)
	def(&au.AuditLogPath, "/var/log/kubernetes/audit/audit.log")
	def(&au.KeycloakNamespace, "keycloak")
	def(&au.Retention, "8760h")
	au.FluentBit = au.FluentBit.Or(FluentBitChart)
	au.Loki = au.Loki.Or(LokiChart)
	au.Grafana = au.Grafana.Or(GrafanaChart)
	return au
}

var retention = regexp.MustCompile(`^[1-9][0-9]*h$`)

func (au Audit) validate(a Args) field.ErrorList {
	au = au.withDefaults("x")
	p := field.Root().Child("audit")
	var errs field.ErrorList
	if !strings.HasPrefix(au.GrafanaURL, "https://") {
		errs.Add(field.Invalid(p.Child("grafanaURL"), au.GrafanaURL, "Grafana's public https:// URL (its OAuth callback is <url>/login/generic_oauth)"))
	}
	if au.GrafanaAdminSecret == "" {
		errs.Add(field.Required(p.Child("grafanaAdminSecret"), "a Secret with keys admin-user and admin-password for the break-glass administrator"))
	}
	if !retention.MatchString(au.Retention) {
		errs.Add(field.Invalid(p.Child("retention"), au.Retention, "hours, e.g. 8760h (a year)"))
	}
	if !strings.HasPrefix(au.AuditLogPath, "/") {
		errs.Add(field.Invalid(p.Child("auditLogPath"), au.AuditLogPath, "an absolute path on the control-plane nodes"))
	}
	for _, c := range []struct{ key, ns string }{{"namespace", au.Namespace}, {"keycloakNamespace", au.KeycloakNamespace}} {
		if !name.MatchString(c.ns) {
			errs.Add(field.Invalid(p.Child(c.key), c.ns, "a namespace name"))
		}
	}
	if i := slices.IndexFunc(a.Tools, func(t Tool) bool { return t.Name == "grafana" }); i < 0 {
		errs.Add(field.Required(field.Root().Child("tools"), `with audit, add a tool named "grafana", so people log in to Grafana through the realm`))
	} else {
		for _, role := range slices.Sorted(maps.Keys(a.Tools[i].Roles)) {
			if role != "admin" && role != "edit" && role != "view" {
				errs.Add(field.Invalid(field.Root().Child("tools").Index(i).Child("roles").Key(role), nil, "Grafana's roles are admin, edit and view (Admin, Editor, Viewer)"))
			}
		}
	}
	for _, c := range []struct {
		key   string
		chart addon.Chart
	}{{"fluentBit", au.FluentBit}, {"loki", au.Loki}, {"grafana", au.Grafana}} {
		errs.Merge(p.Child(c.key), c.chart.Validate())
	}
	for _, k := range slices.Sorted(maps.Keys(au.Values)) {
		if k != "fluent-bit" && k != "loki" && k != "grafana" {
			errs.Add(field.Invalid(p.Child("values").Key(k), nil, "values are per chart: fluent-bit, loki or grafana"))
		}
	}
	return errs
}

func (au Audit) lokiURL() (host string, port int) {
	return "kplane-loki-gateway." + au.Namespace + ".svc", 80
}

// FluentBitValues are the fluent-bit chart's values: the audit log on every node where it exists
// (the DaemonSet tolerates control-plane taints), Keycloak's event lines, both to Loki with a job
// and cluster label.
func (au Audit) FluentBitValues() map[string]any {
	host, port := au.lokiURL()
	dir := au.AuditLogPath[:strings.LastIndex(au.AuditLogPath, "/")]
	out := func(match, job string) string {
		return fmt.Sprintf(`[OUTPUT]
    Name loki
    Match %s
    Host %s
    Port %d
    Labels job=%s, cluster=%s
    Line_Format json
    Auto_Kubernetes_Labels Off
    Retry_Limit False
`, match, host, port, job, au.Cluster)
	}
	return map[string]any{
		"kind":        "DaemonSet",
		"tolerations": []any{map[string]any{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}},
		"config": map[string]any{
			"inputs": fmt.Sprintf(`[INPUT]
    Name tail
    Tag audit.apiserver
    Path %s
    Parser kplane_audit
    DB /var/log/kplane-fluent-bit-audit.db
    Buffer_Max_Size 1MB
    Mem_Buf_Limit 50MB
    Refresh_Interval 5

[INPUT]
    Name tail
    Tag keycloak.*
    Path /var/log/containers/*_%s_*.log
    multiline.parser cri
    DB /var/log/kplane-fluent-bit-keycloak.db
    Mem_Buf_Limit 20MB
`, au.AuditLogPath, au.KeycloakNamespace),
			"filters": fmt.Sprintf(`[FILTER]
    Name kubernetes
    Match keycloak.*
    Kube_Tag_Prefix keycloak.var.log.containers.
    Merge_Log On
    Keep_Log Off
    Labels Off
    Annotations Off

[FILTER]
    Name grep
    Match keycloak.*
    Regex loggerName ^%s$
`, regexp.QuoteMeta(keycloakEventsLog)),
			"outputs": out("audit.*", APIServerAuditJob) + "\n" + out("keycloak.*", KeycloakEventsJob),
			"customParsers": `[PARSER]
    Name kplane_audit
    Format json
    Time_Key stageTimestamp
    Time_Format %Y-%m-%dT%H:%M:%S.%LZ
    Time_Keep On
`,
		},
		"daemonSetVolumes": []any{
			map[string]any{"name": "varlog", "hostPath": map[string]any{"path": "/var/log"}},
			map[string]any{"name": "audit", "hostPath": map[string]any{"path": dir, "type": "DirectoryOrCreate"}},
		},
		"daemonSetVolumeMounts": []any{
			map[string]any{"name": "varlog", "mountPath": "/var/log"},
			map[string]any{"name": "audit", "mountPath": dir, "readOnly": true},
		},
		"securityContext": map[string]any{"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
			"capabilities": map[string]any{"drop": []any{"ALL"}}},
	}
}

// LokiValues are the loki chart's values: one binary on a volume, a year's retention enforced by
// the compactor, no canary, caches or test pods.
func (au Audit) LokiValues() map[string]any {
	return map[string]any{
		"deploymentMode": "Monolithic",
		"loki": map[string]any{
			"auth_enabled": false,
			"commonConfig": map[string]any{"replication_factor": 1},
			"storage":      map[string]any{"type": "filesystem"},
			"schemaConfig": map[string]any{"configs": []any{map[string]any{"from": "2026-01-01", "store": "tsdb", "object_store": "filesystem",
				"schema": "v13", "index": map[string]any{"prefix": "index_", "period": "24h"}}}},
			"limits_config": map[string]any{"retention_period": au.Retention, "reject_old_samples": true, "reject_old_samples_max_age": "168h"},
			"compactor":     map[string]any{"retention_enabled": true, "delete_request_store": "filesystem", "working_directory": "/var/loki/compactor"},
		},
		"singleBinary": map[string]any{"replicas": 1, "persistence": map[string]any{"enabled": true, "size": "50Gi"}},
		"chunksCache":  map[string]any{"enabled": false},
		"resultsCache": map[string]any{"enabled": false},
		"lokiCanary":   map[string]any{"enabled": false},
		"test":         map[string]any{"enabled": false},
	}
}

// GrafanaValues are the grafana chart's values: Loki as the data source, kplane's audit
// dashboards, and login through the realm (public client with PKCE; the tool's roles claim
// decides Admin, Editor or Viewer, and a user with none of them is refused).
func (au Audit) GrafanaValues(a Args) map[string]any {
	a = a.withDefaults()
	host, port := au.lokiURL()
	roles := "contains(roles[*], 'admin') && 'Admin' || contains(roles[*], 'edit') && 'Editor' || contains(roles[*], 'view') && 'Viewer'"
	protocol := a.Issuer() + "/protocol/openid-connect"
	oauth := map[string]any{
		"enabled": true, "name": "kplane", "client_id": "grafana", "use_pkce": true, "allow_sign_up": true,
		"scopes": "openid profile email", "auth_url": protocol + "/auth", "token_url": protocol + "/token", "api_url": protocol + "/userinfo",
		"signout_redirect_url":  protocol + "/logout",
		"role_attribute_path":   roles,
		"role_attribute_strict": true, "allow_assign_grafana_admin": false,
	}
	values := map[string]any{
		"admin": map[string]any{"existingSecret": au.GrafanaAdminSecret, "userKey": "admin-user", "passwordKey": "admin-password"},
		"grafana.ini": map[string]any{
			"server":             map[string]any{"root_url": au.GrafanaURL},
			"analytics":          map[string]any{"check_for_updates": false, "reporting_enabled": false},
			"auth":               map[string]any{"disable_login_form": true, "oauth_auto_login": true},
			"auth.generic_oauth": oauth,
		},
		"datasources": map[string]any{"datasources.yaml": map[string]any{"apiVersion": 1, "datasources": []any{map[string]any{
			"name": "Loki", "uid": "kplane-loki", "type": "loki", "access": "proxy", "isDefault": true, "editable": false,
			"url": fmt.Sprintf("http://%s:%d", host, port)}}}},
		"dashboardProviders": map[string]any{"dashboardproviders.yaml": map[string]any{"apiVersion": 1, "providers": []any{map[string]any{
			"name": "kplane-audit", "folder": "kplane audit", "type": "file", "disableDeletion": true, "editable": false,
			"options": map[string]any{"path": "/var/lib/grafana/dashboards/kplane-audit"}}}}},
		"dashboardsConfigMaps": map[string]any{"kplane-audit": "kplane-audit-dashboards"},
		"containerSecurityContext": map[string]any{"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "runAsNonRoot": true,
			"capabilities": map[string]any{"drop": []any{"ALL"}}, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
	}
	if a.IssuerCA != "" { // Keycloak's certificate is signed by a private CA (auditPipeline puts it in a ConfigMap)
		oauth["tls_client_ca"] = "/etc/grafana/keycloak-ca/ca.crt"
		values["extraConfigmapMounts"] = []any{map[string]any{"name": "keycloak-ca", "configMap": "kplane-keycloak-ca", "mountPath": "/etc/grafana/keycloak-ca", "readOnly": true}}
	}
	return values
}

// auditPipeline installs the three charts and the dashboards into the audit namespace. Fluent
// Bit reads host paths, so the namespace enforces the privileged Pod Security level and audits
// and warns at restricted; a hardened cluster needs an exception for it (docs).
func auditPipeline(ctx *pulumi.Context, name string, a Args, parent pulumi.ResourceOption) error {
	au := a.Audit.withDefaults(ctx.Stack())
	ns, err := corev1.NewNamespace(ctx, name+"-audit-ns", &corev1.NamespaceArgs{Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(au.Namespace),
		Labels: pulumi.StringMap{"pod-security.kubernetes.io/enforce": pulumi.String("privileged"),
			"pod-security.kubernetes.io/audit": pulumi.String("restricted"), "pod-security.kubernetes.io/warn": pulumi.String("restricted"),
			wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}}}, parent)
	if err != nil {
		return err
	}
	meta := func(n string) *metav1.ObjectMetaArgs {
		return &metav1.ObjectMetaArgs{Name: pulumi.String(n), Namespace: ns.Metadata.Name(), Labels: pulumi.StringMap{wellknown.ManagedByLabel: pulumi.String(wellknown.ManagedBy)}}
	}
	dashboards, err := corev1.NewConfigMap(ctx, name+"-audit-dashboards", &corev1.ConfigMapArgs{Metadata: meta("kplane-audit-dashboards"),
		Data: pulumi.ToStringMap(Dashboards())}, parent)
	if err != nil {
		return err
	}
	deps := []pulumi.Resource{ns, dashboards}
	if a.IssuerCA != "" {
		ca, err := corev1.NewConfigMap(ctx, name+"-audit-keycloak-ca", &corev1.ConfigMapArgs{Metadata: meta("kplane-keycloak-ca"),
			Data: pulumi.StringMap{"ca.crt": pulumi.String(a.IssuerCA)}}, parent)
		if err != nil {
			return err
		}
		deps = append(deps, ca)
	}
	for _, c := range []struct {
		release string
		src     addon.Chart
		values  map[string]any
	}{{"kplane-loki", au.Loki, au.LokiValues()}, {"kplane-fluent-bit", au.FluentBit, au.FluentBitValues()}, {"kplane-grafana", au.Grafana, au.GrafanaValues(a)}} {
		key := strings.TrimPrefix(c.release, "kplane-")
		if _, err := helmv4.NewChart(ctx, name+"-"+key, c.src.Args(c.release, au.Namespace, addon.Merge(c.values, au.Values[key])),
			parent, pulumi.DependsOn(deps)); err != nil {
			return err
		}
	}
	return nil
}
