package integration

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/identity/realmsync"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

// demoOrg is the LDAP directory of the identity tests: two teams and a platform administrator.
const demoOrg = `dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice Kim
sn: Kim
mail: alice@example.org
userPassword: Alice-pass-2026!

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob Lee
sn: Lee
mail: bob@example.org
userPassword: Bob-pass-2026!

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol Park
sn: Park
mail: carol@example.org
userPassword: Carol-pass-2026!

dn: cn=platform-admins,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: platform-admins
member: uid=carol,ou=people,dc=example,dc=org

dn: cn=team-a,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: team-a
member: uid=alice,ou=people,dc=example,dc=org

dn: cn=team-b,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: team-b
member: uid=bob,ou=people,dc=example,dc=org
`

// TestIdentityClusterLogin: real OpenLDAP and Keycloak; the realm the identity component
// generates is applied by the realm sync (and drift put back); a real API server started with
// the component's AuthenticationConfiguration accepts an LDAP user's token from a PKCE login, and
// the component's RBAC lets team A work in its namespace and not in team B's.
func TestIdentityClusterLogin(t *testing.T) {
	integration(t)
	ctx := context.Background()
	ldap, err := testbed.StartLDAP(ctx, t.TempDir(), "dc=example,dc=org", demoOrg)
	require.NoError(t, err)
	t.Cleanup(ldap.Stop)
	kc, err := testbed.StartKeycloak(ctx, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() {
		kc.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(kc.Log)
			t.Logf("Keycloak log:\n%s", b)
		}
	})
	httpClient, err := kc.HTTPClient()
	require.NoError(t, err)

	args := identity.Args{KeycloakURL: kc.URL, IssuerCA: string(kc.CA),
		Teams: []identity.Team{{Name: "team-a", Namespaces: []string{"a-apps"}}, {Name: "team-b", Namespaces: []string{"b-apps"}}},
		LDAP:  &identity.LDAP{URL: ldap.URL, BindDN: ldap.BindDN, UsersDN: "ou=people,dc=example,dc=org", GroupsDN: "ou=groups,dc=example,dc=org"},
		Tools: []identity.Tool{{Name: "grafana", RedirectURIs: []string{"http://127.0.0.1:8000"}, Roles: map[string][]string{"Admin": {"platform-admins"}, "Editor": {"team-a", "team-b"}, "Viewer": {"auditors"}}}}}
	// Bad input is refused before anything changes, with what to check.
	_, err = (&realmsync.Client{BaseURL: "https://127.0.0.1:1", HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: kc.AdminPassword}).Apply(ctx, identity.Representation(args), ldap.BindPassword)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "keycloak https://127.0.0.1:1 unreachable")
	_, err = (&realmsync.Client{BaseURL: kc.URL, HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: "wrong"}).Apply(ctx, identity.Representation(args), ldap.BindPassword)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "admin login as "+kc.AdminUser+" refused (HTTP 401): check the admin credentials Secret")
	sync := &realmsync.Client{BaseURL: kc.URL, HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: kc.AdminPassword}
	_, err = sync.Apply(ctx, identity.Representation(args), "not-the-password")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "LDAP federation ldap: bind to "+ldap.URL+" as "+ldap.BindDN+" failed (check the URL and the bind password Secret)")
	assert.NotContains(t, err.Error(), "not-the-password", "the password never shows")
	// A cluster whose API server trusts the realm (a KWOK node: up waits for the sync Job).
	args.Sync = &identity.Sync{Image: "registry.example.com/kplane-realm-sync" + fixtures.Digest, AdminSecret: "keycloak-admin", LDAPSecret: "ldap-bind"}
	authn, err := identity.AuthenticationConfiguration(args)
	require.NoError(t, err)
	authnFile := filepath.Join(t.TempDir(), "authentication.yaml")
	require.NoError(t, os.WriteFile(authnFile, []byte(authn), 0o600))
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1, AuthenticationConfig: authnFile})[0]
	cs, err := c.Clientset()
	require.NoError(t, err)
	for _, ns := range []string{"a-apps", "b-apps"} {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	s := openStack(t, "identity", func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		_, err = identity.NewRealm(ctx, "sso", &args, pulumi.Provider(k8s))
		return err
	}, nil, t.TempDir())
	_, err = s.Up(ctx)
	require.NoError(t, err)
	// What the component declares passes kplane's own policy pack (realm settings, MFA, RBAC, pods).
	res, err := s.Preview(ctx, optpreview.PolicyPacks(buildCommand(t, "github.com/kplane/kplane/policies/cmd/kplane-kubernetes")))
	require.NoError(t, err)
	assert.NotContains(t, res.StdOut, "mandatory")

	// The sync Job's own command, run here as a process (no pod runs), with what the Job mounts:
	// the realm from the component's ConfigMap, the CA, the Secrets' values as environment.
	job := t.TempDir()
	realmCM, err := cs.CoreV1().ConfigMaps(identity.Namespace).Get(ctx, "kplane-realm-kplane", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(job, "realm.json"), []byte(realmCM.Data["realm.json"]), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(job, "ca.crt"), kc.CA, 0o600))
	syncJob, err := cs.BatchV1().Jobs(identity.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kplane-realm-sync"})
	require.NoError(t, err)
	require.Len(t, syncJob.Items, 1)
	var envNames []string
	for _, e := range syncJob.Items[0].Spec.Template.Spec.Containers[0].Env {
		envNames = append(envNames, e.Name)
	}
	assert.ElementsMatch(t, []string{"KEYCLOAK_URL", "KEYCLOAK_ADMIN_USER", "KEYCLOAK_ADMIN_PASSWORD", "KPLANE_LDAP_BIND_CREDENTIAL", "KEYCLOAK_CA_FILE"}, envNames)
	bin := buildCommand(t, "github.com/kplane/kplane/components/identity/realmsync/cmd/kplane-realm-sync")
	realmSync := func() string {
		cmd := exec.Command(bin, "--realm="+filepath.Join(job, "realm.json"))
		cmd.Env = append(os.Environ(), "KEYCLOAK_URL="+kc.URL, "KEYCLOAK_CA_FILE="+filepath.Join(job, "ca.crt"), "KEYCLOAK_ADMIN_USER="+kc.AdminUser,
			"KEYCLOAK_ADMIN_PASSWORD="+kc.AdminPassword, "KPLANE_LDAP_BIND_CREDENTIAL="+ldap.BindPassword)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		assert.NotContains(t, string(out), ldap.BindPassword)
		return string(out)
	}
	assert.Equal(t, "created realm kplane\nrealm kplane: 1 changes\n", realmSync())
	assert.Equal(t, "realm kplane: 0 changes\n", realmSync(), "a second sync changes nothing")

	// A change made by hand in Keycloak is put back by the next sync.
	admin := &realmsync.Client{BaseURL: kc.URL, HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: kc.AdminPassword}
	require.NoError(t, admin.Do(ctx, "PUT", "/admin/realms/kplane", map[string]any{"realm": "kplane", "accessTokenLifespan": 3600, "bruteForceProtected": false}, nil))
	assert.Equal(t, "realm kplane: accessTokenLifespan 3600 -> 300\nrealm kplane: bruteForceProtected false -> true\nrealm kplane: 2 changes\n", realmSync())

	// (edit is an aggregated role: the controller-manager fills its rules shortly after start.)
	require.Eventually(t, func() bool {
		edit, err := cs.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
		return err == nil && len(edit.Rules) > 0
	}, 60*time.Second, 200*time.Millisecond)
	token, err := oidcLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "alice", "Alice-pass-2026!", false)
	require.NoError(t, err)
	alice := asUser(t, c.Kubeconfig, token)
	// The API server started before the realm existed: its authenticator retries the issuer's
	// discovery in the background until it answers.
	start := time.Now()
	require.Eventually(t, func() bool {
		_, err = alice.CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
		return !apierrors.IsUnauthorized(err)
	}, 90*time.Second, 500*time.Millisecond, "the API server trusts the realm once it exists")
	t.Logf("the API server accepted the realm's tokens %.1f s after the first try", time.Since(start).Seconds())
	assert.NoError(t, err, "team A works in its namespace; token claims: %s", claims(token))
	_, err = alice.CoreV1().ConfigMaps("b-apps").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "and not in team B's: %v", err)
	assert.Contains(t, fmt.Sprint(err), `User "oidc:alice"`, "the username carries the prefix")

	// A token whose signature was tampered with is refused.
	parts := strings.Split(token, ".")
	parts[2] = strings.Repeat("A", len(parts[2]))
	_, err = asUser(t, c.Kubeconfig, strings.Join(parts, ".")).CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsUnauthorized(err), "badly signed: %v", err)

	// Tokens for another audience, from another issuer, or expired are refused too.
	refused := func(what, token string) {
		_, err := asUser(t, c.Kubeconfig, token).CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
		assert.True(t, apierrors.IsUnauthorized(err), "%s: %v", what, err)
	}
	require.NoError(t, admin.Do(ctx, "POST", "/admin/realms/kplane/clients", map[string]any{"clientId": "other-app", "publicClient": true,
		"standardFlowEnabled": true, "redirectUris": []string{"http://127.0.0.1:8000"}, "attributes": map[string]any{"pkce.code.challenge.method": "S256"}}, nil))
	other, err := oidcLogin(httpClient, args.Issuer(), "other-app", "http://127.0.0.1:8000", "alice", "Alice-pass-2026!", false)
	require.NoError(t, err)
	assert.Contains(t, claims(other), `"aud":"other-app"`)
	refused("another client's token", other)

	// The same identity in a tool: the Grafana client's token carries her team's role there.
	grafana, err := oidcLogin(httpClient, args.Issuer(), "grafana", "http://127.0.0.1:8000", "alice", "Alice-pass-2026!", false)
	require.NoError(t, err)
	assert.Contains(t, claims(grafana), `"roles":["Editor"]`)

	otherRealm := identity.Args{KeycloakURL: kc.URL, Realm: "elsewhere"}
	_, err = sync.Apply(ctx, identity.Representation(otherRealm), "")
	require.NoError(t, err)
	require.NoError(t, admin.Do(ctx, "POST", "/admin/realms/elsewhere/users", map[string]any{"username": "alice", "enabled": true,
		"email": "alice@elsewhere.example", "firstName": "Alice", "lastName": "Elsewhere", "emailVerified": true,
		"credentials": []any{map[string]any{"type": "password", "value": "Elsewhere-pass-2026!", "temporary": false}}}, nil))
	other, err = oidcLogin(httpClient, otherRealm.Issuer(), "kubernetes", "http://127.0.0.1:8000", "alice", "Elsewhere-pass-2026!", false)
	require.NoError(t, err)
	refused("another issuer's token", other)

	require.NoError(t, admin.Do(ctx, "PUT", "/admin/realms/kplane", map[string]any{"realm": "kplane", "accessTokenLifespan": 2}, nil))
	short, err := oidcLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "alice", "Alice-pass-2026!", false)
	require.NoError(t, err)
	time.Sleep(3 * time.Second)
	refused("an expired token", short)
	assert.Equal(t, "realm kplane: accessTokenLifespan 2 -> 300\nrealm kplane: 1 changes\n", realmSync())

	// An administrator gets no token with a password alone: the browser flow asks for a second
	// factor (here: to set one up). With a TOTP code computed from the enrolment's secret, she
	// gets in, with the admin group's rights.
	_, err = oidcLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "carol", "Carol-pass-2026!", false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "second factor required")
	token, err = oidcLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "carol", "Carol-pass-2026!", true)
	require.NoError(t, err)
	assert.Contains(t, claims(token), `"groups":["platform-admins"]`)
	_, err = asUser(t, c.Kubeconfig, token).CoreV1().ConfigMaps("b-apps").List(ctx, metav1.ListOptions{})
	assert.NoError(t, err, "administrators work in every namespace")

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
}

// totp is RFC 6238's code (HMAC-SHA1, 6 digits, 30 s: Keycloak's default OTP policy).
func totp(secret []byte, at time.Time) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	mac := hmac.New(sha1.New, secret)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	code := (binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff) % 1000000
	return fmt.Sprintf("%06d", code)
}

var totpSecret = regexp.MustCompile(`name="totpSecret"[^>]*value="([^"]+)"`)

// asUser is a client of the cluster authenticating with a bearer token.
func asUser(t *testing.T, kubeconfig, token string) *k8sclient.Clientset {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	cfg.CertData, cfg.KeyData, cfg.CertFile, cfg.KeyFile = nil, nil, "", ""
	cfg.BearerToken = token
	cs, err := k8sclient.NewForConfig(cfg)
	require.NoError(t, err)
	return cs
}

// claims is the JWT's payload, for failure messages.
func claims(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "(not a JWT)"
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	return string(raw)
}

func feedback(m [][]byte) string {
	if m == nil {
		return "(no message on the page)"
	}
	return strings.TrimSpace(html.UnescapeString(string(m[1])))
}

var formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)

// oidcLogin logs user in through the browser flow with PKCE, as kubelogin does, and returns the
// ID token.
// With enrol, a user asked to set up OTP does so with a code computed from the page's secret.
func oidcLogin(base *http.Client, issuer, clientID, redirect, user, password string, enrol bool) (string, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Transport: base.Transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	verifier := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"kplane-test"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	resp, err := client.Get(issuer + "/protocol/openid-connect/auth?" + q.Encode())
	if err != nil {
		return "", err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formAction.FindSubmatch(page)
	if m == nil {
		return "", fmt.Errorf("no login form (HTTP %d)", resp.StatusCode)
	}
	resp, err = client.PostForm(html.UnescapeString(string(m[1])), url.Values{"username": {user}, "password": {password}, "credentialId": {""}})
	if err != nil {
		return "", err
	}
	// Follow Keycloak's own redirects (required actions); stop at the client's redirect URI.
	for resp.StatusCode == http.StatusFound && strings.HasPrefix(resp.Header.Get("Location"), issuer) {
		resp.Body.Close()
		if resp, err = client.Get(resp.Header.Get("Location")); err != nil {
			return "", err
		}
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := totpSecret.FindSubmatch(page); m != nil {
		if !enrol {
			return "", fmt.Errorf("login of %s: second factor required (OTP set-up page)", user)
		}
		action := formAction.FindSubmatch(page)
		secret := html.UnescapeString(string(m[1]))
		resp, err = client.PostForm(html.UnescapeString(string(action[1])), url.Values{"totp": {totp([]byte(secret), time.Now())}, "totpSecret": {secret}, "userLabel": {"test"}})
		if err != nil {
			return "", err
		}
		page, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		msg := regexp.MustCompile(`(?s)<span[^>]*(?:input-error|kc-feedback-text|alert)[^>]*>(.*?)</span>`).FindSubmatch(page)
		return "", fmt.Errorf("login of %s: no code (HTTP %d, Location %q): %s %.3000s", user, resp.StatusCode, resp.Header.Get("Location"), feedback(msg), page)
	}
	resp, err = client.PostForm(issuer+"/protocol/openid-connect/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {redirect}, "client_id": {clientID}, "code_verifier": {verifier}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.IDToken == "" {
		return "", fmt.Errorf("token exchange: HTTP %d %s %v", resp.StatusCode, tok.Error, err)
	}
	return tok.IDToken, nil
}
