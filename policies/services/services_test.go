package services

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/policies/fixture"
	"github.com/kplane/kplane/policies/pack"
)

// messages evaluates manifest with policies and returns "policy: message" lines.
func messages(t *testing.T, policies []pack.Policy, manifest string) []string {
	t.Helper()
	p := &pack.Pack{Name: "t", Version: "0", Policies: policies}
	require.NoError(t, p.Validate())
	rs, err := fixture.Resources(manifest, "t")
	require.NoError(t, err)
	var out []string
	vs := p.EvaluateStack(rs, nil)
	for _, r := range rs {
		vs = append(vs, p.Evaluate(r, nil)...)
	}
	for _, v := range vs {
		out = append(out, v.Policy.Name+": "+v.Message)
	}
	return out
}

func TestBackupPolicies(t *testing.T) {
	chart := "apiVersion: helm.sh/v4\nkind: Chart\nmetadata: {name: velero}\n"
	// (fixture.Resources types a chart kubernetes:helm.sh/v4:Chart, as the engine does.)
	got := messages(t, BackupPolicies(), strings.Replace(chart, "kind: Chart", "kind: Chart\nchart: velero", 1))
	assert.Equal(t, []string{"kplane-backup-scheduled: Velero is installed but the stack declares no BackupStorageLocation",
		"kplane-backup-scheduled: Velero is installed but the stack declares no backup Schedule"}, got)
	assert.Empty(t, messages(t, BackupPolicies(), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), "no Velero, no backup policy")

	got = messages(t, BackupPolicies(), `apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: nfs, namespace: velero}
spec: {provider: aws, objectStorage: {bucket: b}, config: {insecureSkipTLSVerify: "true"}}
---
apiVersion: velero.io/v1
kind: Schedule
metadata: {name: s, namespace: velero}
spec: {schedule: "every day", paused: true, template: {ttl: 24h, storageLocation: other}}
`)
	assert.ElementsMatch(t, []string{
		"kplane-backup-scheduled: BackupStorageLocation nfs: config.insecureSkipTLSVerify is true",
		`kplane-backup-scheduled: Schedule s: schedule "every day" is not a cron expression`,
		"kplane-backup-scheduled: Schedule s is paused",
		`kplane-backup-scheduled: Schedule s: storageLocation "other" is not a BackupStorageLocation of the stack`}, got)
}

// realmYAML is a realm ConfigMap of rep.
func realmYAML(t *testing.T, rep map[string]any) string {
	raw, err := json.Marshal(rep)
	require.NoError(t, err)
	quoted, err := json.Marshal(string(raw))
	require.NoError(t, err)
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: r, labels: {kplane.io/keycloak-realm: x}}\ndata: {realm.json: " + string(quoted) + "}\n"
}

func TestAdminMFA(t *testing.T) {
	base := map[string]any{"realm": "x", "passwordPolicy": "length(10) and digits(1) and upperCase(1) and notUsername and passwordHistory(1)",
		"bruteForceProtected": true, "failureFactor": 10}
	mfa := func(rep map[string]any) []string {
		for k, v := range base {
			rep[k] = v
		}
		return messages(t, IdentityPolicies(), realmYAML(t, rep))
	}
	missing := []string{"kplane-keycloak-admin-mfa: realm x (ConfigMap r): administrators can log in without a second factor (the browser flow requires no OTP/WebAuthn for admin roles)"}
	assert.Equal(t, missing, mfa(map[string]any{}), "Keycloak's built-in flow asks OTP only of users who set it up")

	flow := func(cond string, negate string) map[string]any {
		execs := []any{map[string]any{"authenticator": "auth-username-password-form", "requirement": "REQUIRED"},
			map[string]any{"flowAlias": "second", "requirement": cond}}
		second := []any{map[string]any{"authenticator": "webauthn-authenticator", "requirement": "REQUIRED"}}
		if cond == "CONDITIONAL" {
			second = append([]any{map[string]any{"authenticator": "conditional-user-role", "requirement": "REQUIRED", "authenticatorConfig": "c"}}, second...)
		}
		return map[string]any{"browserFlow": "b", "authenticationFlows": []any{
			map[string]any{"alias": "b", "authenticationExecutions": execs},
			map[string]any{"alias": "second", "authenticationExecutions": second}},
			"authenticatorConfig": []any{map[string]any{"alias": "c", "config": map[string]any{"condUserRole": "realm-management.realm-admin", "negate": negate}}}}
	}
	assert.Empty(t, mfa(flow("REQUIRED", "")), "everybody: WebAuthn required")
	assert.Empty(t, mfa(flow("CONDITIONAL", "false")), "admins: conditional on an admin role")
	assert.Equal(t, missing, mfa(flow("CONDITIONAL", "true")), "negated: everybody but admins")
	assert.Equal(t, missing, mfa(flow("DISABLED", "")))
	assert.Empty(t, mfa(map[string]any{"requiredActions": []any{map[string]any{"alias": "CONFIGURE_TOTP", "enabled": true, "defaultAction": true}}}),
		"everybody enrols OTP, the built-in flow asks for it")
}

func TestIdentityPolicies(t *testing.T) {
	check := func(rep map[string]any) []string {
		var out []string
		for _, m := range messages(t, IdentityPolicies(), realmYAML(t, rep)) {
			if !strings.HasPrefix(m, "kplane-keycloak-admin-mfa") {
				out = append(out, strings.Replace(m, "realm x (ConfigMap r): ", "", 1))
			}
		}
		return out
	}
	ok := map[string]any{"realm": "x", "passwordPolicy": "length(8) and upperCase(1) and digits(1) and specialChars(1) and notUsername and passwordHistory(2)",
		"bruteForceProtected": true, "failureFactor": 3}
	assert.Empty(t, check(ok), "Keycloak's default lifetimes are within limits")
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range ok {
			m[a] = b
		}
		m[k] = v
		return m
	}
	assert.Empty(t, check(with("passwordPolicy", "length(10) and lowerCase(1) and digits(1) and notUsername and passwordHistory(1)")), "10 characters of two kinds")
	assert.Equal(t, []string{`kplane-keycloak-password-policy: passwordPolicy "length(9) and lowerCase(1) and digits(1) and notUsername and passwordHistory(1)": needs length(>=8) with three character kinds, or length(>=10) with two`},
		check(with("passwordPolicy", "length(9) and lowerCase(1) and digits(1) and notUsername and passwordHistory(1)")))
	assert.Equal(t, []string{`kplane-keycloak-password-policy: passwordPolicy "": needs length(>=8) with three character kinds, or length(>=10) with two`,
		"kplane-keycloak-password-policy: passwordPolicy lacks notUsername", "kplane-keycloak-password-policy: passwordPolicy lacks passwordHistory"}, check(with("passwordPolicy", "")))
	assert.Equal(t, []string{"kplane-keycloak-brute-force: failureFactor <nil>: lock after 1..10 failures (Keycloak's default is 30)"}, check(with("failureFactor", nil)))
	assert.Equal(t, []string{"kplane-keycloak-token-lifetimes: ssoSessionIdleTimeout 7200 s: at most 1800 s"}, check(with("ssoSessionIdleTimeout", 7200)))
	assert.Equal(t, []string{"kplane-keycloak-admin-mfa: ConfigMap r: realm.json is not a realm representation: unexpected end of JSON input",
		"kplane-keycloak-password-policy: ConfigMap r: realm.json is not a realm representation: unexpected end of JSON input",
		"kplane-keycloak-brute-force: ConfigMap r: realm.json is not a realm representation: unexpected end of JSON input",
		"kplane-keycloak-token-lifetimes: ConfigMap r: realm.json is not a realm representation: unexpected end of JSON input"},
		messages(t, IdentityPolicies(), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: r, labels: {kplane.io/keycloak-realm: x}}\ndata: {realm.json: \"{\"}\n"))
}

func TestMeshPolicies(t *testing.T) {
	ns := "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/rev: stable}}\n---\n"
	pa := func(ns, mode string) string {
		return "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: " + ns + "}\nspec: {mtls: {mode: " + mode + "}}\n---\n"
	}
	assert.Empty(t, messages(t, MeshPolicies(), ns+pa(MeshRootNamespace, "STRICT")), "the mesh-wide policy covers it")
	assert.Empty(t, messages(t, MeshPolicies(), ns+pa(MeshRootNamespace, "STRICT")+pa("shop", "UNSET")), "UNSET inherits")
	assert.Equal(t, []string{"kplane-mesh-mtls-strict: Namespace shop is meshed but no STRICT PeerAuthentication covers it (Istio's default is PERMISSIVE)"},
		messages(t, MeshPolicies(), ns+pa("shop", "UNSET")))
	assert.ElementsMatch(t, []string{"kplane-mesh-mtls-strict: PeerAuthentication shop/default: mtls.mode PERMISSIVE",
		"kplane-mesh-mtls-strict: Namespace shop is meshed but no STRICT PeerAuthentication covers it (Istio's default is PERMISSIVE)"},
		messages(t, MeshPolicies(), ns+pa(MeshRootNamespace, "STRICT")+pa("shop", "PERMISSIVE")))
	assert.Equal(t, []string{"kplane-mesh-mtls-strict: PeerAuthentication shop/db: port 5432 mtls.mode DISABLE",
		"kplane-mesh-mtls-strict: DestinationRule shop/db: trafficPolicy.tls.mode DISABLE sends plain text"},
		messages(t, MeshPolicies(), ns+pa(MeshRootNamespace, "STRICT")+`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db, namespace: shop}
spec: {selector: {matchLabels: {app: db}}, portLevelMtls: {"5432": {mode: DISABLE}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec: {host: db, trafficPolicy: {tls: {mode: DISABLE}}}
`))
	assert.Empty(t, messages(t, MeshPolicies(), "apiVersion: v1\nkind: Namespace\nmetadata: {name: legacy, labels: {istio-injection: disabled, istio.io/rev: stable}}\n"), "injection disabled wins")
}

func TestRoutePolicies(t *testing.T) {
	route := func(extra string) []string {
		return messages(t, RoutePolicies(), `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop, annotations: {konghq.com/plugins: token}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: kong}
spec: {gatewayClassName: kong}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{name: edge, namespace: kong}]
  rules: [{backendRefs: [{name: api, port: 80}]}]
---
apiVersion: configuration.konghq.com/v1
kind: KongPlugin
metadata: {name: token, namespace: shop}
plugin: openid-connect
---
`+extra)
	}
	assert.Equal(t, []string{"kplane-route-rate-limited: HTTPRoute shop/api (kong): no rate limit applies to this public route"}, route(""),
		"the backend Service's plugin authenticates")
	assert.Empty(t, route("apiVersion: configuration.konghq.com/v1\nkind: KongClusterPlugin\nmetadata: {name: limit, labels: {global: \"true\"}}\nplugin: rate-limiting\n"),
		"a global plugin applies to every route")
	assert.Len(t, route("apiVersion: configuration.konghq.com/v1\nkind: KongClusterPlugin\nmetadata: {name: limit}\nplugin: rate-limiting\n"), 1,
		"a cluster plugin applies only where it is named")

	vs := func(annotations, more string) []string {
		return messages(t, RoutePolicies(), `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop, annotations: {`+annotations+`}}
spec: {hosts: [shop.example.com], gateways: [istio-ingress/public, mesh]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-ingress}
spec: {jwtRules: [{issuer: "https://sso"}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: rl, namespace: istio-system}
spec: {configPatches: [{patch: {value: {name: envoy.filters.http.local_ratelimit}}}]}
---
`+more)
	}
	assert.Equal(t, []string{"kplane-route-authenticated: VirtualService shop/shop (istio gateway): no authentication applies to this public route"}, vs("", ""),
		"a RequestAuthentication alone lets requests without a token through")
	assert.Empty(t, vs("", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny, namespace: istio-ingress}\nspec: {action: DENY, rules: [{from: [{source: {notRequestPrincipals: [\"*\"]}}]}]}\n"),
		"DENY without a principal, in the gateway's namespace; the mesh-wide rate limit")
	assert.Empty(t, vs("kplane.io/exposure: internal", ""), "internal routes are skipped")
	assert.Empty(t, messages(t, RoutePolicies(), "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x, namespace: y}\nspec: {ingressClassName: nginx}\n"),
		"only Kong and Istio routes are judged")
	portal := "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: portal\n  namespace: web\n  annotations:\n    kplane.io/exposure: login\nspec: {ingressClassName: kong}\n"
	assert.Equal(t, []string{"kplane-route-rate-limited: Ingress web/portal (kong): no rate limit applies to this public route"}, messages(t, RoutePolicies(), portal),
		"an application that logs people in through the realm counts as authenticated, and still needs a rate limit")
}
