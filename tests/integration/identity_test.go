package integration

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
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
		LDAP: &identity.LDAP{URL: ldap.URL, BindDN: ldap.BindDN, UsersDN: "ou=people,dc=example,dc=org", GroupsDN: "ou=groups,dc=example,dc=org"}}
	sync := &realmsync.Client{BaseURL: kc.URL, HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: kc.AdminPassword}
	changes, err := sync.Apply(ctx, identity.Representation(args), ldap.BindPassword)
	require.NoError(t, err)
	assert.Equal(t, []string{"created realm kplane"}, changes)
	changes, err = sync.Apply(ctx, identity.Representation(args), ldap.BindPassword)
	require.NoError(t, err)
	assert.Empty(t, changes, "a second sync changes nothing")

	// A change made by hand in Keycloak is put back by the next sync.
	admin := &realmsync.Client{BaseURL: kc.URL, HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: kc.AdminPassword}
	require.NoError(t, admin.Do(ctx, "PUT", "/admin/realms/kplane", map[string]any{"realm": "kplane", "accessTokenLifespan": 3600, "bruteForceProtected": false}, nil))
	changes, err = sync.Apply(ctx, identity.Representation(args), ldap.BindPassword)
	require.NoError(t, err)
	assert.Equal(t, []string{"realm kplane: accessTokenLifespan 3600 -> 300", "realm kplane: bruteForceProtected false -> true"}, changes)

	// A cluster whose API server trusts the realm, with the component's RBAC.
	authn, err := identity.AuthenticationConfiguration(args)
	require.NoError(t, err)
	authnFile := filepath.Join(t.TempDir(), "authentication.yaml")
	require.NoError(t, os.WriteFile(authnFile, []byte(authn), 0o600))
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true, AuthenticationConfig: authnFile})[0]
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

	// (edit is an aggregated role: the controller-manager fills its rules shortly after start.)
	require.Eventually(t, func() bool {
		edit, err := cs.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
		return err == nil && len(edit.Rules) > 0
	}, 60*time.Second, 200*time.Millisecond)
	token, err := oidcLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "alice", "Alice-pass-2026!", false)
	require.NoError(t, err)
	alice := asUser(t, c.Kubeconfig, token)
	_, err = alice.CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
	assert.NoError(t, err, "team A works in its namespace; token claims: %s", claims(token))
	_, err = alice.CoreV1().ConfigMaps("b-apps").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "and not in team B's: %v", err)
	assert.Contains(t, fmt.Sprint(err), `User "oidc:alice"`, "the username carries the prefix")

	// A token whose signature was tampered with is refused.
	parts := strings.Split(token, ".")
	parts[2] = strings.Repeat("A", len(parts[2]))
	_, err = asUser(t, c.Kubeconfig, strings.Join(parts, ".")).CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsUnauthorized(err), "badly signed: %v", err)

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
