package integration

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/identity/realmsync"
	fleetstack "github.com/kplane/kplane/stacks/fleet"
	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/identitydemo"
)

// TestFleetLogin: people log in to the fleet's Argo CD through the identity realm. Real OpenLDAP
// and Keycloak with the realm the identity component generates (Argo CD as a tool client), and
// Argo CD's own API server, set by `kplane-fleet up` (oidc.config, argocd-rbac-cm): each user's
// realm token is validated by Argo CD and their tool role becomes their Argo CD role (the
// platform administrator administers, a team's member operates, the auditor reads; someone in no
// group is refused by the realm); a forged token, another tool's token and no token are refused.
func TestFleetLogin(t *testing.T) {
	integration(t)
	ctx := context.Background()
	ldap, err := testbed.StartLDAP(ctx, t.TempDir(), "dc=example,dc=org", identitydemo.DemoOrg)
	require.NoError(t, err)
	t.Cleanup(ldap.Stop)
	kc, err := testbed.StartKeycloak(ctx, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(kc.Stop)
	httpClient, err := kc.HTTPClient()
	require.NoError(t, err)
	const argoURL = "https://argocd.fleet.test"
	args := identitydemo.DemoRealm(kc.URL, kc.CA, ldap.URL, ldap.BindDN)
	args.Tools = []identity.Tool{{Name: "argocd", RedirectURIs: []string{argoURL + "/auth/callback"}}, {Name: "grafana", RedirectURIs: []string{"https://grafana.fleet.test/login/generic_oauth"}}}
	_, err = (&realmsync.Client{BaseURL: kc.URL, HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: kc.AdminPassword}).Apply(ctx, identity.Representation(args),
		func(name string) (string, bool) { return ldap.BindPassword, name == "KPLANE_LDAP_BIND_CREDENTIAL" })
	require.NoError(t, err)

	mgmt := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	require.NoError(t, testbed.InstallArgoCD(ctx, mgmt))
	envs := t.TempDir()
	_, fleet := fleetCLI(t, t.TempDir(), envs, t.TempDir())
	writeFleetEnv(t, envs, "test", map[string]any{"environment": "test", "management": mgmt.Kubeconfig,
		"login":    map[string]any{"issuer": args.Issuer(), "rootCA": string(kc.CA), "url": argoURL, "grafanaURL": "https://grafana.fleet.test"},
		"clusters": []map[string]any{{"name": "seoul", "kubeconfig": mgmt.Kubeconfig}}})
	out, err := fleet("up")
	require.NoError(t, err, out)
	// The server builds its OIDC client once, when it starts: the login rolls its Deployment.
	cs, err := mgmt.Clientset()
	require.NoError(t, err)
	cm, err := cs.CoreV1().ConfigMaps("argocd").Get(ctx, "argocd-cm", metav1.GetOptions{})
	require.NoError(t, err)
	require.Contains(t, cm.Data["oidc.config"], "enablePKCEAuthentication: true")
	server, err := cs.AppsV1().Deployments("argocd").Get(ctx, "argocd-server", metav1.GetOptions{})
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(cm.Data["oidc.config"]))
	assert.Equal(t, hex.EncodeToString(sum[:]), server.Spec.Template.Annotations[fleetstack.LoginChecksumAnnotation])
	assert.Equal(t, "quay.io/argoproj/argocd:v3.6.1", server.Spec.Template.Spec.Containers[0].Image, "the rest of the Deployment stays the installer's")
	// Argo CD's server reads the realm's CA when it starts (its session manager's HTTP client):
	// it starts after the login is set, as a rollout of its Deployment would.
	argo, err := testbed.StartArgoCD(ctx, mgmt, t.TempDir(), testbed.ArgoCDOptions{WithServer: true})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Argo CD's logs:\n%s", argo.Logs(40))
		}
		argo.Stop()
	})
	token := func(user, password string, client string, mfa bool) string {
		tok, err := identitydemo.OIDCLogin(httpClient, args.Issuer(), client, map[string]string{"argocd": argoURL + "/auth/callback", "grafana": "https://grafana.fleet.test/login/generic_oauth"}[client], user, password, mfa)
		require.NoError(t, err, user)
		return tok
	}
	canI := func(tok, resource, action, object string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, argo.ServerURL+"/api/v1/account/can-i/"+resource+"/"+action+"/"+object, nil)
		require.NoError(t, err)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var v struct{ Value string }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v.Value
	}
	carol, erin := token("carol", identitydemo.CarolPassword, "argocd", true), token("erin", identitydemo.ErinPassword, "argocd", false)
	alice := token("alice", identitydemo.AlicePassword, "argocd", false)
	// Someone in no group holds no role in the tool: the realm refuses the login itself.
	_, err = identitydemo.OIDCLogin(httpClient, args.Issuer(), "argocd", argoURL+"/auth/callback", "frank", identitydemo.FrankPassword, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "login of frank: no code (HTTP 401")
	// Argo CD's server picks its settings up as they change.
	require.Eventually(t, func() bool {
		code, v := canI(carol, "clusters", "update", "*")
		return code == http.StatusOK && v == "yes"
	}, 60*time.Second, time.Second,
		"the platform administrator administers Argo CD")
	for _, c := range []struct {
		who, tok, resource, action, object, want string
	}{
		{"carol", carol, "projects", "delete", "*", "yes"},
		{"alice", alice, "applications", "sync", "kplane-platform-test/kplane-platform-test-seoul", "yes"},
		{"alice", alice, "applications", "delete", "kplane-platform-test/kplane-platform-test-seoul", "no"},
		{"alice", alice, "clusters", "update", "*", "no"},
		{"erin", erin, "applications", "get", "kplane-platform-test/kplane-platform-test-seoul", "yes"},
		{"erin", erin, "applications", "sync", "kplane-platform-test/kplane-platform-test-seoul", "no"},
	} {
		code, v := canI(c.tok, c.resource, c.action, c.object)
		assert.Equal(t, http.StatusOK, code, "%s %s %s", c.who, c.action, c.resource)
		assert.Equal(t, c.want, v, "%s may %s %s", c.who, c.action, c.resource)
	}

	// Refused: no token, another tool's token (its audience is grafana), a forged one (erin's
	// claims signed by another key).
	code, _ := canI("", "applications", "get", "*/*")
	assert.Equal(t, http.StatusUnauthorized, code, "no token")
	grafana := token("erin", identitydemo.ErinPassword, "grafana", false)
	code, _ = canI(grafana, "applications", "get", "*/*")
	assert.Equal(t, http.StatusUnauthorized, code, "another tool's token")
	code, _ = canI(forge(t, erin), "applications", "get", "*/*")
	assert.Equal(t, http.StatusUnauthorized, code, "a forged token")

	// The fleet Grafana logs in through the same realm as its own tool client: the role its
	// grafana.ini reads is in the realm's token.
	dir := t.TempDir()
	out, err = fleet("prometheus", "--out", dir, "--metrics", "127.0.0.1:9100")
	require.NoError(t, err, out)
	ini, err := os.ReadFile(filepath.Join(dir, "grafana", "grafana.ini"))
	require.NoError(t, err)
	for _, want := range []string{"[auth.generic_oauth]\n", "client_id = grafana\n", "use_pkce = true\n", "role_attribute_strict = true\n",
		"auth_url = " + args.Issuer() + "/protocol/openid-connect/auth\n", "[auth]\ndisable_login_form = true\n", "root_url = https://grafana.fleet.test\n"} {
		assert.Contains(t, string(ini), want)
	}
	assert.FileExists(t, filepath.Join(dir, "grafana", "dashboards", "kplane", "kplane-fleet.json"))
	parsed, err := jwt.ParseSigned(grafana, []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	var claims struct {
		Aud   any      `json:"aud"`
		Roles []string `json:"roles"`
	}
	require.NoError(t, parsed.UnsafeClaimsWithoutVerification(&claims))
	assert.Equal(t, []string{"view"}, claims.Roles, "erin's role in the fleet Grafana: Viewer")
}

// forge is tok's claims, signed by a key of its own (same algorithm and key ID).
func forge(t *testing.T, tok string) string {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	var claims map[string]any
	require.NoError(t, parsed.UnsafeClaimsWithoutVerification(&claims))
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: parsed.Headers[0].KeyID}}, nil)
	require.NoError(t, err)
	forged, err := jwt.Signed(signer).Claims(claims).Serialize()
	require.NoError(t, err)
	return forged
}
