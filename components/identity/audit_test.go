package identity

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/policies/pack"
)

func auditArgs() Args {
	a := testArgs()
	a.Tools = []Tool{{Name: "grafana", RedirectURIs: []string{"https://grafana.example.com/login/generic_oauth"}}}
	a.Audit = &Audit{GrafanaURL: "https://grafana.example.com", GrafanaAdminSecret: "grafana-admin"}
	return a
}

func TestAuditValidate(t *testing.T) {
	require.NoError(t, auditArgs().Validate())
	for _, c := range []struct {
		mutate func(*Args)
		want   string
	}{
		{func(a *Args) { a.Tools = nil }, `add a tool named "grafana"`},
		{func(a *Args) { a.Audit.GrafanaURL = "http://g" }, "audit.grafanaURL"},
		{func(a *Args) { a.Audit.GrafanaAdminSecret = "" }, "audit.grafanaAdminSecret: required"},
		{func(a *Args) { a.Audit.Retention = "1y" }, `audit.retention "1y"`},
		{func(a *Args) { a.Audit.AuditLogPath = "audit.log" }, "audit.auditLogPath"},
		{func(a *Args) { a.Audit.Values = map[string]map[string]any{"promtail": {}} }, `audit.values[promtail]`},
		{func(a *Args) { a.Audit.Loki.Version = ""; a.Audit.Loki.Repo = "ftp://x" }, "audit.loki.repo"},
		{func(a *Args) { a.Tools[0].Roles = map[string][]string{"owner": {"platform-admins"}} }, `roles[owner]: Grafana's roles are admin, edit and view`},
	} {
		a := auditArgs()
		au := *a.Audit
		a.Audit = &au
		a.Tools = append([]Tool{}, a.Tools...)
		c.mutate(&a)
		err := a.Validate()
		require.Error(t, err, c.want)
		assert.Contains(t, err.Error(), c.want)
	}
}

// TestAuditGraph: the pipeline's charts at their pinned versions with kplane's values, the
// dashboards beside them, users' values merged over kplane's.
func TestAuditGraph(t *testing.T) {
	a := auditArgs()
	a.IssuerCA = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
	a.Audit.Values = map[string]map[string]any{"loki": {"singleBinary": map[string]any{"persistence": map[string]any{"size": "200Gi"}}}}
	m := &pack.Recorder{}
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewRealm(ctx, "sso", &a)
		return err
	}, pulumi.WithMocks("kplane", "test", m)))
	chartOf := func(n string) map[string]any {
		r := m.Inputs()["kubernetes:helm.sh/v4:Chart sso-"+n]
		require.NotNil(t, r, n)
		return r.Mappable()
	}
	loki, fb, graf := chartOf("loki"), chartOf("fluent-bit"), chartOf("grafana")
	assert.Equal(t, LokiChart.Version, loki["version"])
	assert.Equal(t, "kplane-audit", loki["namespace"])
	lv := loki["values"].(map[string]any)
	assert.Equal(t, "8760h", lv["loki"].(map[string]any)["limits_config"].(map[string]any)["retention_period"])
	assert.Equal(t, true, lv["loki"].(map[string]any)["compactor"].(map[string]any)["retention_enabled"])
	assert.Equal(t, "200Gi", lv["singleBinary"].(map[string]any)["persistence"].(map[string]any)["size"], "user values win")
	assert.Equal(t, true, lv["singleBinary"].(map[string]any)["persistence"].(map[string]any)["enabled"], "and keep kplane's beside them")

	cfg := fb["values"].(map[string]any)["config"].(map[string]any)
	assert.Contains(t, cfg["inputs"], "Path /var/log/kubernetes/audit/audit.log")
	assert.Contains(t, cfg["inputs"], "Path /var/log/containers/*_keycloak_*.log")
	assert.Contains(t, cfg["filters"], `Regex loggerName ^org\.keycloak\.events$`)
	assert.Contains(t, cfg["outputs"], "Labels job=kube-apiserver-audit, cluster=test")
	assert.Contains(t, cfg["outputs"], "Host kplane-loki-gateway.kplane-audit.svc")

	ini := graf["values"].(map[string]any)["grafana.ini"].(map[string]any)
	oauth := ini["auth.generic_oauth"].(map[string]any)
	assert.Equal(t, "https://sso.example.com/realms/kplane/protocol/openid-connect/auth", oauth["auth_url"])
	assert.Equal(t, true, oauth["role_attribute_strict"], "a user with no Grafana role is refused")
	assert.Equal(t, "/etc/grafana/keycloak-ca/ca.crt", oauth["tls_client_ca"])
	assert.Equal(t, true, ini["auth"].(map[string]any)["disable_login_form"])
	assert.NotContains(t, graf["values"], "adminPassword", "the break-glass password comes from a Secret")

	ns := m.Inputs()["kubernetes:core/v1:Namespace sso-audit-ns"].Mappable()["metadata"].(map[string]any)["labels"].(map[string]any)
	assert.Equal(t, "privileged", ns["pod-security.kubernetes.io/enforce"])
	assert.Equal(t, "restricted", ns["pod-security.kubernetes.io/warn"])
	data := m.Inputs()["kubernetes:core/v1:ConfigMap sso-audit-dashboards"].Mappable()["data"].(map[string]any)
	assert.Len(t, data, 3)

	// Without a private CA Grafana mounts none.
	a.IssuerCA = ""
	v := a.Audit.withDefaults("test").GrafanaValues(a)
	assert.NotContains(t, v, "extraConfigmapMounts")
	assert.NotContains(t, v["grafana.ini"].(map[string]any)["auth.generic_oauth"], "tls_client_ca")
}

func TestDashboards(t *testing.T) {
	for file, raw := range Dashboards() {
		var d struct {
			UID    string `json:"uid"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		require.NoError(t, json.Unmarshal([]byte(raw), &d), file)
		assert.Equal(t, strings.TrimSuffix(file, ".json"), d.UID)
		require.NotEmpty(t, d.Panels, file)
		for _, p := range d.Panels {
			require.Len(t, p.Targets, 1, p.Title)
			assert.Contains(t, p.Targets[0].Expr, `cluster=~"$cluster"}`, p.Title)
		}
	}
	assert.Equal(t, `sum by (user_username, verb, objectRef_resource, objectRef_namespace, responseStatus_code) (count_over_time({job="kube-apiserver-audit", cluster=~"$cluster"} | json | responseStatus_code=~"401|403" [5m]))`,
		QueryDenied.LogQL("5m"))
	assert.Contains(t, QueryLogins.LogQL("5m"), ` | line_format "{{.message}}" | regexp "(?:^|, )type=\"?(?P<type>[^\",]*)"`)
}

func TestLogQueryMatch(t *testing.T) {
	got, ok := QueryDenied.Match(`{"kind":"Event","verb":"list","user":{"username":"oidc:alice","groups":["oidc:team-a"]},"objectRef":{"resource":"pods","namespace":"b"},"responseStatus":{"code":403}}`)
	require.True(t, ok)
	assert.Equal(t, map[string]string{"user_username": "oidc:alice", "verb": "list", "objectRef_resource": "pods", "objectRef_namespace": "b", "responseStatus_code": "403"}, got)
	_, ok = QueryDenied.Match(`{"verb":"list","responseStatus":{"code":200}}`)
	assert.False(t, ok)
	got, ok = QueryLogins.Match(`{"loggerName":"org.keycloak.events","message":"type=\"LOGIN_ERROR\", realmId=\"r1\", clientId=\"kubernetes\", userId=\"null\", ipAddress=\"127.0.0.1\", error=\"invalid_user_credentials\", username=\"alice\""}`)
	require.True(t, ok)
	assert.Equal(t, "LOGIN_ERROR", got["type"])
	assert.Equal(t, "alice", got["username"])
	assert.Equal(t, "invalid_user_credentials", got["error"])
	_, ok = QueryLogins.Match(`not json`)
	assert.False(t, ok)
}
