package integration

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/identity/realmsync"
	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/identitydemo"
)

// TestIdentityClusterLogin: real OpenLDAP and Keycloak; the realm the identity component
// generates is applied by the realm sync (and drift put back); a real API server started with
// the component's AuthenticationConfiguration accepts an LDAP user's token from a PKCE login, and
// the component's RBAC lets team A work in its namespace and not in team B's.
func TestIdentityClusterLogin(t *testing.T) {
	integration(t)
	ctx := context.Background()
	ldap, err := testbed.StartLDAP(ctx, t.TempDir(), "dc=example,dc=org", identitydemo.DemoOrg)
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

	args := identitydemo.DemoRealm(kc.URL, kc.CA, ldap.URL, ldap.BindDN)
	args.Tools = []identity.Tool{{Name: "grafana", RedirectURIs: []string{"http://127.0.0.1:8000"}, Roles: map[string][]string{"Admin": {"platform-admins"}, "Editor": {"team-a", "team-b"}, "Viewer": {"auditors"}}},
		// The business (developer) console: the teams' people, not the auditors.
		{Name: "business-console", RedirectURIs: []string{"http://127.0.0.1:8000"}, Roles: map[string][]string{"developer": {"team-a", "team-b"}}}}
	// A partner's identity provider, brokered by OIDC: another realm of the same Keycloak, where
	// dora is in the partner's group corp-team-a (kplane maps it to team-a).
	admin := &realmsync.Client{BaseURL: kc.URL, HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: kc.AdminPassword}
	noSecrets := func(string) (string, bool) { return "", false }
	_, err = admin.Apply(ctx, identity.Representation(identity.Args{KeycloakURL: kc.URL, Realm: "corp", AdminGroup: "corp-admins", AuditorGroup: "corp-auditors",
		Teams: []identity.Team{{Name: "corp-team-a", Namespaces: []string{"x"}}}}), noSecrets)
	require.NoError(t, err)
	require.NoError(t, admin.Do(ctx, "POST", "/admin/realms/corp/clients", map[string]any{"clientId": "kplane-broker", "publicClient": false, "secret": "broker-secret-2026",
		"standardFlowEnabled": true, "redirectUris": []string{kc.URL + "/realms/kplane/broker/corp/endpoint"},
		"protocolMappers": []any{map[string]any{"name": "groups", "protocol": "openid-connect", "protocolMapper": "oidc-group-membership-mapper",
			"config": map[string]any{"claim.name": "groups", "full.path": "false", "id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "true"}}}}, nil))
	require.NoError(t, admin.Do(ctx, "POST", "/admin/realms/corp/users", map[string]any{"username": "dora", "enabled": true, "email": "dora@partner.example",
		"firstName": "Dora", "lastName": "Partner", "emailVerified": true, "groups": []string{"/corp-team-a"},
		"credentials": []any{map[string]any{"type": "password", "value": "Dora-pass-2026!", "temporary": false}}}, nil))
	// The same partner by SAML as well: its realm is a SAML identity provider for kplane's
	// (signed assertions, the username as NameID, profile and groups as attributes); dan logs in
	// there.
	require.NoError(t, admin.Do(ctx, "POST", "/admin/realms/corp/clients", map[string]any{"clientId": kc.URL + "/realms/kplane", "protocol": "saml",
		"redirectUris": []string{kc.URL + "/realms/kplane/broker/corp-saml/endpoint"},
		"attributes": map[string]any{"saml.assertion.signature": "true", "saml.server.signature": "true", "saml.client.signature": "false",
			"saml_force_name_id_format": "true", "saml_name_id_format": "username", "saml.signature.algorithm": "RSA_SHA256",
			"saml_assertion_consumer_url_post": kc.URL + "/realms/kplane/broker/corp-saml/endpoint"},
		"protocolMappers": []any{
			map[string]any{"name": "groups", "protocol": "saml", "protocolMapper": "saml-group-membership-mapper",
				"config": map[string]any{"attribute.name": "groups", "full.path": "false", "single": "true"}},
			samlProperty("email"), samlProperty("firstName"), samlProperty("lastName")}}, nil))
	require.NoError(t, admin.Do(ctx, "POST", "/admin/realms/corp/users", map[string]any{"username": "dan", "enabled": true, "email": "dan@partner.example",
		"firstName": "Dan", "lastName": "Partner", "emailVerified": true, "groups": []string{"/corp-team-a"},
		"credentials": []any{map[string]any{"type": "password", "value": "Dan-pass-2026!", "temporary": false}}}, nil))
	var keys struct {
		Keys []struct{ Algorithm, Certificate string }
	}
	require.NoError(t, admin.Do(ctx, "GET", "/admin/realms/corp/keys", nil, &keys))
	var corpCert string
	for _, k := range keys.Keys {
		if k.Algorithm == "RS256" {
			corpCert = k.Certificate
		}
	}
	require.NotEmpty(t, corpCert)
	args.IdentityProviders = []identity.IdentityProvider{{Alias: "corp", Type: "oidc", DisplayName: "Partner SSO", Issuer: kc.URL + "/realms/corp",
		ClientID: "kplane-broker", Groups: map[string]string{"corp-team-a": "team-a"}},
		{Alias: "corp-saml", Type: "saml", DisplayName: "Partner SAML", SingleSignOnURL: kc.URL + "/realms/corp/protocol/saml", EntityID: kc.URL + "/realms/corp",
			SigningCertificate: corpCert, Groups: map[string]string{"corp-team-a": "team-a"}}}
	secrets := func(name string) (string, bool) {
		v, ok := map[string]string{"KPLANE_LDAP_BIND_CREDENTIAL": ldap.BindPassword, "KPLANE_IDP_SECRET_CORP": "broker-secret-2026"}[name]
		return v, ok
	}

	// Bad input is refused before anything changes, with what to check.
	_, err = (&realmsync.Client{BaseURL: "https://127.0.0.1:1", HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: kc.AdminPassword}).Apply(ctx, identity.Representation(args), secrets)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "keycloak https://127.0.0.1:1 unreachable")
	_, err = (&realmsync.Client{BaseURL: kc.URL, HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: "wrong"}).Apply(ctx, identity.Representation(args), secrets)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "admin login as "+kc.AdminUser+" refused (HTTP 401): check the admin credentials Secret")
	sync := &realmsync.Client{BaseURL: kc.URL, HTTP: httpClient, AdminUser: kc.AdminUser, AdminPassword: kc.AdminPassword}
	_, err = sync.Apply(ctx, identity.Representation(args), func(name string) (string, bool) {
		if name == "KPLANE_LDAP_BIND_CREDENTIAL" {
			return "not-the-password", true
		}
		return secrets(name)
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "LDAP federation ldap: bind to "+ldap.URL+" as "+ldap.BindDN+" failed (check the URL and the bind password Secret)")
	assert.NotContains(t, err.Error(), "not-the-password", "the password never shows")
	// A cluster whose API server trusts the realm (a KWOK node: up waits for the sync Job).
	args.Sync = &identity.Sync{Image: "registry.example.com/kplane-realm-sync" + rules.Digest, AdminSecret: "keycloak-admin", LDAPSecret: "ldap-bind", IdentityProviderSecret: "idp-secrets"}
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
	res, err := s.Preview(ctx, optpreview.PolicyPacks(buildCommand(t, "github.com/kplane/kplane/cmd/kplane-kubernetes")))
	require.NoError(t, err)
	assert.NotContains(t, res.StdOut, "mandatory")

	// The sync Job's own command, run here as a process (no pod runs), with what the Job mounts:
	// the realm from the component's ConfigMap, the CA, the Secrets' values as environment.
	job := t.TempDir()
	realmCM, err := cs.CoreV1().ConfigMaps(identity.Namespace).Get(ctx, "kplane-realm-kplane", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(job, "realm.json"), []byte(realmCM.Data["realm.json"]), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(job, "ca.crt"), kc.CA, 0o600))
	jobs, err := cs.BatchV1().Jobs(identity.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kplane-realm-sync"})
	require.NoError(t, err)
	var envNames []string
	for _, j := range jobs.Items {
		if len(j.OwnerReferences) == 0 { // the per-change Job (the CronJob's own runs have it as owner)
			for _, e := range j.Spec.Template.Spec.Containers[0].Env {
				envNames = append(envNames, e.Name)
			}
		}
	}
	assert.ElementsMatch(t, []string{"KEYCLOAK_URL", "KEYCLOAK_ADMIN_USER", "KEYCLOAK_ADMIN_PASSWORD", "KPLANE_LDAP_BIND_CREDENTIAL", "KPLANE_IDP_SECRET_CORP", "KEYCLOAK_CA_FILE"}, envNames)
	bin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-realm-sync")
	realmSync := func(flags ...string) string {
		cmd := exec.Command(bin, append([]string{"--realm=" + filepath.Join(job, "realm.json")}, flags...)...)
		cmd.Env = append(os.Environ(), "KEYCLOAK_URL="+kc.URL, "KEYCLOAK_CA_FILE="+filepath.Join(job, "ca.crt"), "KEYCLOAK_ADMIN_USER="+kc.AdminUser,
			"KEYCLOAK_ADMIN_PASSWORD="+kc.AdminPassword, "KPLANE_LDAP_BIND_CREDENTIAL="+ldap.BindPassword, "KPLANE_IDP_SECRET_CORP=broker-secret-2026")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		assert.NotContains(t, string(out), ldap.BindPassword)
		return string(out)
	}
	assert.Equal(t, "created realm kplane\nrealm kplane: 1 changes\n", realmSync())
	assert.Equal(t, "realm kplane: 0 changes\n", realmSync(), "a second sync changes nothing")

	// A change made by hand in Keycloak is put back by the next sync.
	require.NoError(t, admin.Do(ctx, "PUT", "/admin/realms/kplane", map[string]any{"realm": "kplane", "accessTokenLifespan": 3600, "bruteForceProtected": false}, nil))
	assert.Equal(t, "realm kplane: accessTokenLifespan 3600 -> 300\nrealm kplane: bruteForceProtected false -> true\nrealm kplane: 2 changes\n", realmSync())

	// What was added by hand and the realm does not declare is removed by the next sync: a
	// client, a group, and realm-management's realm-admin granted to a user and to a declared
	// group. Keycloak's built-in clients stay. --report-only lists it and removes nothing.
	base := "/admin/realms/kplane"
	require.NoError(t, admin.Do(ctx, "POST", base+"/clients", map[string]any{"clientId": "backdoor", "publicClient": true, "redirectUris": []any{"*"}}, nil))
	require.NoError(t, admin.Do(ctx, "POST", base+"/groups", map[string]any{"name": "shadow-admins"}, nil))
	require.NoError(t, admin.Do(ctx, "POST", base+"/users", map[string]any{"username": "mallory", "enabled": true}, nil))
	var found []map[string]any
	require.NoError(t, admin.Do(ctx, "GET", base+"/clients?clientId=realm-management", nil, &found))
	rm := fmt.Sprint(found[0]["id"])
	var realmAdmin map[string]any
	require.NoError(t, admin.Do(ctx, "GET", base+"/clients/"+rm+"/roles/realm-admin", nil, &realmAdmin))
	require.NoError(t, admin.Do(ctx, "GET", base+"/users?exact=true&username=mallory", nil, &found))
	mallory := fmt.Sprint(found[0]["id"])
	require.NoError(t, admin.Do(ctx, "POST", base+"/users/"+mallory+"/role-mappings/clients/"+rm, []any{realmAdmin}, nil))
	require.NoError(t, admin.Do(ctx, "GET", base+"/groups?exact=true&search=team-a", nil, &found))
	teamA := fmt.Sprint(found[0]["id"])
	require.NoError(t, admin.Do(ctx, "POST", base+"/groups/"+teamA+"/role-mappings/clients/"+rm, []any{realmAdmin}, nil))
	report := realmSync("--report-only")
	for _, want := range []string{"would remove client backdoor", "would remove group shadow-admins", "would remove user mallory: realm-management role realm-admin",
		"would remove group team-a: realm-management role realm-admin"} {
		assert.Contains(t, report, want)
	}
	require.NoError(t, admin.Do(ctx, "GET", base+"/clients?clientId=backdoor", nil, &found))
	assert.Len(t, found, 1, "report only: nothing removed")
	out := realmSync()
	t.Logf("sync after changes by hand:\n%s", out)
	for _, want := range []string{"removed client backdoor (not declared)", "removed group shadow-admins (not declared)",
		"removed user mallory: realm-management role realm-admin (not declared)", "removed group team-a: realm-management role realm-admin (not declared)"} {
		assert.Contains(t, out, want)
	}
	require.NoError(t, admin.Do(ctx, "GET", base+"/clients?clientId=backdoor", nil, &found))
	assert.Empty(t, found, "the hand-added client is gone")
	var mappings map[string]any
	require.NoError(t, admin.Do(ctx, "GET", base+"/users/"+mallory+"/role-mappings", nil, &mappings))
	assert.NotContains(t, mappings, "clientMappings", "mallory is no realm administrator")
	require.NoError(t, admin.Do(ctx, "GET", base+"/groups/"+teamA+"/role-mappings", nil, &mappings))
	assert.NotContains(t, fmt.Sprint(mappings["clientMappings"]), "realm-admin", "nor is team-a")
	var clients []map[string]any
	require.NoError(t, admin.Do(ctx, "GET", base+"/clients", nil, &clients))
	var ids []string
	for _, c := range clients {
		ids = append(ids, fmt.Sprint(c["clientId"]))
	}
	for _, builtIn := range []string{"account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console", "kubernetes"} {
		assert.Contains(t, ids, builtIn, "built-in and declared clients stay")
	}
	assert.Equal(t, "realm kplane: 0 changes\n", realmSync(), "and the next sync changes nothing")

	// (edit is an aggregated role: the controller-manager fills its rules shortly after start.)
	require.Eventually(t, func() bool {
		edit, err := cs.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
		return err == nil && len(edit.Rules) > 0
	}, 60*time.Second, 200*time.Millisecond)
	token, err := identitydemo.OIDCLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "alice", identitydemo.AlicePassword, false)
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
	assert.NoError(t, err, "team A works in its namespace; token claims: %s", identitydemo.Claims(token))
	_, err = alice.CoreV1().ConfigMaps("b-apps").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "and not in team B's: %v", err)
	assert.Contains(t, fmt.Sprint(err), `User "oidc:alice"`, "the username carries the prefix")

	// A token whose signature was tampered with is refused.
	parts := strings.Split(token, ".")
	parts[2] = strings.Repeat("A", len(parts[2]))
	_, err = asUser(t, c.Kubeconfig, strings.Join(parts, ".")).CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsUnauthorized(err), "badly signed: %v", err)

	// A user in no group has no groups claim: the API server refuses the token and says why in
	// its log (the client only sees 401, as for any refused token).
	frank, err := identitydemo.OIDCLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "frank", identitydemo.FrankPassword, false)
	require.NoError(t, err)
	assert.NotContains(t, identitydemo.Claims(frank), `"groups"`)
	_, err = asUser(t, c.Kubeconfig, frank).CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsUnauthorized(err), "no groups claim: %v", err)
	require.Eventually(t, func() bool {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "kcp.log"))
		return strings.Contains(string(log), "the token has no groups claim")
	}, 10*time.Second, 200*time.Millisecond, "the API server names the missing claim")

	// Tokens for another audience, from another issuer, or expired are refused too.
	refused := func(what, token string) {
		_, err := asUser(t, c.Kubeconfig, token).CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
		assert.True(t, apierrors.IsUnauthorized(err), "%s: %v", what, err)
	}
	require.NoError(t, admin.Do(ctx, "POST", "/admin/realms/kplane/clients", map[string]any{"clientId": "other-app", "publicClient": true,
		"standardFlowEnabled": true, "redirectUris": []string{"http://127.0.0.1:8000"}, "attributes": map[string]any{"pkce.code.challenge.method": "S256"}}, nil))
	other, err := identitydemo.OIDCLogin(httpClient, args.Issuer(), "other-app", "http://127.0.0.1:8000", "alice", identitydemo.AlicePassword, false)
	require.NoError(t, err)
	assert.Contains(t, identitydemo.Claims(other), `"aud":"other-app"`)
	refused("another client's token", other)

	// The same identity in a tool: the Grafana client's token carries her team's role there.
	grafana, err := identitydemo.OIDCLogin(httpClient, args.Issuer(), "grafana", "http://127.0.0.1:8000", "alice", identitydemo.AlicePassword, false)
	require.NoError(t, err)
	assert.Contains(t, identitydemo.Claims(grafana), `"roles":["Editor"]`)
	// Keycloak itself refuses a tool to whoever holds none of its roles: frank (in no group) gets
	// no Grafana token, the teams get the business console and an auditor does not.
	_, err = identitydemo.OIDCLogin(httpClient, args.Issuer(), "grafana", "http://127.0.0.1:8000", "frank", identitydemo.FrankPassword, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no code (HTTP 401", "frank is denied access: %v", err)
	business, err := identitydemo.OIDCLogin(httpClient, args.Issuer(), "business-console", "http://127.0.0.1:8000", "bob", identitydemo.BobPassword, false)
	require.NoError(t, err)
	assert.Contains(t, identitydemo.Claims(business), `"roles":["developer"]`)
	_, err = identitydemo.OIDCLogin(httpClient, args.Issuer(), "business-console", "http://127.0.0.1:8000", "erin", identitydemo.ErinPassword, false)
	require.Error(t, err, "auditors have no business console")
	assert.Contains(t, err.Error(), "no code (HTTP 401")

	// Several identity providers at once: dora logs in at the partner's provider and works as team A.
	dora, err := identitydemo.OIDCLoginVia(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "corp", "dora", "Dora-pass-2026!", false)
	require.NoError(t, err)
	assert.Contains(t, identitydemo.Claims(dora), `"groups":["team-a"]`)
	_, err = asUser(t, c.Kubeconfig, dora).CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
	assert.NoError(t, err, "a brokered user of team A works in its namespace")

	dan, err := identitydemo.OIDCLoginVia(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "corp-saml", "dan", "Dan-pass-2026!", false)
	require.NoError(t, err, "a SAML login through the partner")
	assert.Contains(t, identitydemo.Claims(dan), `"preferred_username":"dan"`)
	assert.Contains(t, identitydemo.Claims(dan), `"groups":["team-a"]`)
	_, err = asUser(t, c.Kubeconfig, dan).CoreV1().ConfigMaps("a-apps").List(ctx, metav1.ListOptions{})
	assert.NoError(t, err, "a SAML-brokered user of team A works in its namespace")

	otherRealm := identity.Args{KeycloakURL: kc.URL, Realm: "elsewhere"}
	_, err = sync.Apply(ctx, identity.Representation(otherRealm), secrets)
	require.NoError(t, err)
	require.NoError(t, admin.Do(ctx, "POST", "/admin/realms/elsewhere/users", map[string]any{"username": "alice", "enabled": true,
		"email": "alice@elsewhere.example", "firstName": "Alice", "lastName": "Elsewhere", "emailVerified": true,
		"credentials": []any{map[string]any{"type": "password", "value": "Elsewhere-pass-2026!", "temporary": false}}}, nil))
	other, err = identitydemo.OIDCLogin(httpClient, otherRealm.Issuer(), "kubernetes", "http://127.0.0.1:8000", "alice", "Elsewhere-pass-2026!", false)
	require.NoError(t, err)
	refused("another issuer's token", other)

	require.NoError(t, admin.Do(ctx, "PUT", "/admin/realms/kplane", map[string]any{"realm": "kplane", "accessTokenLifespan": 2}, nil))
	short, err := identitydemo.OIDCLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "alice", identitydemo.AlicePassword, false)
	require.NoError(t, err)
	time.Sleep(3 * time.Second)
	refused("an expired token", short)
	// (and the client made by hand above for another audience goes: the realm does not declare it)
	assert.Equal(t, "realm kplane: accessTokenLifespan 2 -> 300\nremoved client other-app (not declared)\nrealm kplane: 2 changes\n", realmSync())

	// Separate consoles: an auditor reads the realm's users and events through Keycloak's admin
	// API (what the admin console calls) and cannot change it; a team member cannot even read.
	console := kc.URL + "/admin/kplane/console/"
	asAdminAPI := func(token, method, path string) int {
		req, err := http.NewRequestWithContext(ctx, method, kc.URL+path, strings.NewReader(`{"realm":"kplane","accessTokenLifespan":60}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	erin, err := identitydemo.OIDCAccessToken(httpClient, args.Issuer(), "security-admin-console", console, "erin", identitydemo.ErinPassword, false)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, asAdminAPI(erin, "GET", "/admin/realms/kplane/users"), "auditors read users")
	assert.Equal(t, http.StatusOK, asAdminAPI(erin, "GET", "/admin/realms/kplane/events"), "and login events")
	assert.Equal(t, http.StatusForbidden, asAdminAPI(erin, "PUT", "/admin/realms/kplane"), "but change nothing")
	aliceConsole, err := identitydemo.OIDCAccessToken(httpClient, args.Issuer(), "security-admin-console", console, "alice", identitydemo.AlicePassword, false)
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, asAdminAPI(aliceConsole, "GET", "/admin/realms/kplane/users"), "team members have no admin console")

	// Switching the administrators' OTP step off by hand does not last: the next sync puts it back.
	var steps []map[string]any
	require.NoError(t, admin.Do(ctx, "GET", "/admin/realms/kplane/authentication/flows/kplane-browser/executions", nil, &steps))
	for _, st := range steps {
		if st["providerId"] == "auth-otp-form" {
			st["requirement"] = "DISABLED"
			require.NoError(t, admin.Do(ctx, "PUT", "/admin/realms/kplane/authentication/flows/kplane-browser/executions", st, nil))
		}
	}
	assert.Equal(t, "authentication flow kplane-admin-second-factor: auth-otp-form DISABLED -> REQUIRED\nrealm kplane: 1 changes\n", realmSync())
	// Nor does deleting it: the sync recreates the step where it was.
	require.NoError(t, admin.Do(ctx, "GET", "/admin/realms/kplane/authentication/flows/kplane-admin-second-factor/executions", nil, &steps))
	for _, st := range steps {
		if st["providerId"] == "auth-otp-form" {
			require.NoError(t, admin.Do(ctx, "DELETE", "/admin/realms/kplane/authentication/executions/"+fmt.Sprint(st["id"]), nil, nil))
		}
	}
	assert.Equal(t, "authentication flow kplane-admin-second-factor: auth-otp-form DISABLED -> REQUIRED\nauthentication flow kplane-admin-second-factor: created step auth-otp-form\nrealm kplane: 2 changes\n", realmSync())

	// An administrator gets no token with a password alone: the browser flow asks for a second
	// factor (here: to set one up). With a TOTP code computed from the enrolment's secret, she
	// gets in, with the admin group's rights.
	_, err = identitydemo.OIDCLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "carol", identitydemo.CarolPassword, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "second factor required")
	token, err = identitydemo.OIDCLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "carol", identitydemo.CarolPassword, true)
	require.NoError(t, err)
	assert.Contains(t, identitydemo.Claims(token), `"groups":["platform-admins"]`)
	_, err = asUser(t, c.Kubeconfig, token).CoreV1().ConfigMaps("b-apps").List(ctx, metav1.ListOptions{})
	assert.NoError(t, err, "administrators work in every namespace")

	// The audit trail, through the dashboards' own queries: the API server's audit log has
	// alice's refused request and the administrator's change; Keycloak's event lines have the
	// logins, a failed one, and the realm sync's administration.
	_, err = asUser(t, c.Kubeconfig, token).CoreV1().ConfigMaps("b-apps").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "by-carol"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = identitydemo.OIDCLogin(httpClient, args.Issuer(), "kubernetes", "http://127.0.0.1:8000", "bob", "not-bobs-password", false)
	require.Error(t, err)
	apiAudit := filepath.Join(c.Dir, "audit", "audit.log")
	trail := []struct {
		log   string
		query identity.LogQuery
		want  map[string]string
	}{
		{apiAudit, identity.QueryDenied, map[string]string{"user_username": "oidc:alice", "verb": "list", "objectRef_resource": "configmaps", "objectRef_namespace": "b-apps", "responseStatus_code": "403"}},
		{apiAudit, identity.QueryClusterChanges, map[string]string{"user_username": "oidc:carol", "verb": "create", "objectRef_resource": "configmaps", "objectRef_namespace": "b-apps", "objectRef_name": "by-carol"}},
		{kc.Log, identity.QueryLogins, map[string]string{"type": "LOGIN", "clientId": "kubernetes", "username": "alice", "ipAddress": "127.0.0.1", "error": ""}},
		{kc.Log, identity.QueryLogins, map[string]string{"type": "LOGIN_ERROR", "clientId": "kubernetes", "username": "bob", "ipAddress": "127.0.0.1", "error": "invalid_user_credentials"}},
	}
	for _, e := range trail {
		assert.Eventually(t, func() bool {
			return slices.ContainsFunc(matches(t, e.log, e.query), func(m map[string]string) bool { return maps.Equal(m, e.want) })
		},
			10*time.Second, 200*time.Millisecond, "%s: %v; matched: %v", e.query.Job, e.want, matches(t, e.log, e.query))
	}
	adminEvents := matches(t, kc.Log, identity.QueryKeycloakAdmin)
	require.NotEmpty(t, adminEvents, "the realm sync's changes are admin events")
	assert.True(t, slices.ContainsFunc(adminEvents, func(m map[string]string) bool {
		return m["operationType"] == "UPDATE" && m["resourceType"] == "AUTH_EXECUTION" && m["userId"] != "" && m["clientId"] != ""
	}), "with what and who: %v", adminEvents)
	t.Logf("audit trail: %d denied requests, %d logins and failures, %d Keycloak admin actions", len(matches(t, apiAudit, identity.QueryDenied)), len(matches(t, kc.Log, identity.QueryLogins)), len(adminEvents))

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
}

// samlProperty sends a user property as a SAML attribute of the same name.
func samlProperty(name string) map[string]any {
	return map[string]any{"name": name, "protocol": "saml", "protocolMapper": "saml-user-property-mapper",
		"config": map[string]any{"user.attribute": name, "attribute.name": name}}
}

// matches are the By labels of every line of a log file that the query matches.
func matches(t *testing.T, path string, q identity.LogQuery) []map[string]string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []map[string]string
	for _, line := range strings.Split(string(b), "\n") {
		if m, ok := q.Match(line); ok {
			out = append(out, m)
		}
	}
	return out
}

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
