package identity

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/policies/pack"
)

func testArgs() Args {
	return Args{KeycloakURL: "https://sso.example.com", Teams: []Team{{Name: "team-a", Namespaces: []string{"a"}}},
		LDAP: &LDAP{URL: "ldap://ldap.example.com", BindDN: "cn=kc,dc=example,dc=org", UsersDN: "ou=people,dc=example,dc=org", GroupsDN: "ou=groups,dc=example,dc=org"}}
}

func TestValidate(t *testing.T) {
	assert.NoError(t, testArgs().Validate())
	for _, c := range []struct {
		mutate func(*Args)
		want   string
	}{
		{func(a *Args) { a.KeycloakURL = "" }, "keycloakURL: required"},
		{func(a *Args) { a.KeycloakURL = "http://sso" }, "must be an https:// URL"},
		{func(a *Args) { a.Prefix = "system:" }, `prefix "system:"`},
		{func(a *Args) { a.Teams[0].Name = "org/team-a" }, "group names are flat"},
		{func(a *Args) { a.Teams = append(a.Teams, a.Teams[0]) }, "used twice"},
		{func(a *Args) { a.Teams[0].Namespaces = nil }, "namespaces: required; at least one"},
		{func(a *Args) { a.LDAP.URL = "ldapx://x" }, "ldap.url"},
		{func(a *Args) { a.LDAP.GroupsDN = "" }, "groupsDN"},
		{func(a *Args) { a.Teams[0].Name = "platform-admins" }, "used twice (or as the admin/auditor group)"},
		{func(a *Args) { a.Sync = &Sync{Image: "kplane-realm-sync:latest", AdminSecret: "a", LDAPSecret: "l"} }, "pin kplane-realm-sync by digest"},
		{func(a *Args) {
			a.IdentityProviders = []IdentityProvider{{Alias: "p", Type: "oidc", Issuer: "https://p"}}
		}, "oidc needs clientID"},
		{func(a *Args) {
			a.IdentityProviders = []IdentityProvider{{Alias: "p", Type: "saml", SingleSignOnURL: "https://p", EntityID: "p"}}
		}, "signingCertificate (assertions are verified)"},
		{func(a *Args) {
			a.IdentityProviders = []IdentityProvider{{Alias: "p", Type: "oidc", Issuer: "https://p", ClientID: "c", Groups: map[string]string{"admins": "platform-admins"}}}
		}, "a brokered login cannot make an administrator"},
		{func(a *Args) {
			a.Tools = []Tool{{Name: "grafana", RedirectURIs: []string{"https://g"}, Roles: map[string][]string{"Admin": {"nobody"}}}}
		}, `"nobody": no such group`},
		{func(a *Args) {
			a.IdentityProviders = []IdentityProvider{{Alias: "p", Type: "oidc", Issuer: "https://p", ClientID: "c", Attributes: map[string]string{"email": "mail"}}}
		}, `attributes[email] "mail": SAML providers map email, firstName and lastName`},
		{func(a *Args) { a.Sync = &Sync{Image: "r/s@sha256:" + strings.Repeat("a", 64), LDAPSecret: "l"} }, "sync.adminSecret: required"},
		{func(a *Args) { a.Sync = &Sync{Image: "r/s@sha256:" + strings.Repeat("a", 64), AdminSecret: "a"} }, "sync.ldapSecret: required; with ldap"},
	} {
		a := testArgs()
		a.Teams = append([]Team{}, a.Teams...)
		l := *a.LDAP
		a.LDAP = &l
		c.mutate(&a)
		err := a.Validate()
		require.Error(t, err, c.want)
		assert.Contains(t, err.Error(), c.want)
	}
}

func TestRepresentation(t *testing.T) {
	rep := Representation(testArgs())
	raw, err := json.Marshal(rep)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "password\":", "no secret in the representation")
	assert.Contains(t, string(raw), BindCredentialPlaceholder)
	assert.Contains(t, string(raw), `"condUserRole":"platform-admin"`)
	assert.Contains(t, string(raw), `"full.path":"false"`, "flat group names")

	// Each tool is closed to people with no role in it: a realm role per tool on the groups that
	// hold its roles, and the tool's browser flow denies access without it.
	a := testArgs()
	a.Tools = []Tool{{Name: "console", RedirectURIs: []string{"https://console.example.com/cb"}, Roles: map[string][]string{"developer": {"team-a"}}}}
	rep = Representation(a)
	raw, err = json.Marshal(rep)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"authenticationFlowBindingOverrides":{"browser":"kplane-console-browser"}`)
	assert.Contains(t, string(raw), `{"alias":"kplane-console-no-role","config":{"condUserRole":"kplane-tool-console","negate":"true"}}`)
	assert.Contains(t, string(raw), `"authenticator":"deny-access-authenticator"`)
	for _, g := range rep["groups"].([]any) {
		g := g.(map[string]any)
		roles, _ := g["realmRoles"].([]any)
		assert.Equal(t, g["name"] == "team-a", slices.Contains(roles, any("kplane-tool-console")), g["name"])
	}

	// A SAML provider brings the user's profile (Azure AD's attribute names here) besides groups.
	a = testArgs()
	a.IdentityProviders = []IdentityProvider{{Alias: "azure", Type: "saml", SingleSignOnURL: "https://login.example.com/saml2", EntityID: "https://sts.example.com/",
		SigningCertificate: "MIIC", Attributes: map[string]string{"email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"}}}
	var names []string
	for _, m := range Representation(a)["identityProviderMappers"].([]any) {
		m := m.(map[string]any)
		names = append(names, fmt.Sprint(m["name"], "=", m["config"].(map[string]any)["attribute.name"]))
	}
	assert.Equal(t, []string{"attribute email=http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "attribute firstName=firstName", "attribute lastName=lastName"}, names)
}

func TestAuthenticationConfiguration(t *testing.T) {
	a := testArgs()
	a.IssuerCA = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"
	out, err := AuthenticationConfiguration(a)
	require.NoError(t, err)
	var cfg struct {
		Kind string
		JWT  []struct {
			Issuer struct {
				URL                  string
				Audiences            []string
				CertificateAuthority string `json:"certificateAuthority"`
			}
			ClaimMappings struct {
				Username, Groups struct{ Claim, Prefix string }
			} `json:"claimMappings"`
		}
	}
	require.NoError(t, yaml.Unmarshal([]byte(out), &cfg))
	assert.Equal(t, "AuthenticationConfiguration", cfg.Kind)
	require.Len(t, cfg.JWT, 1)
	assert.Equal(t, "https://sso.example.com/realms/kplane", cfg.JWT[0].Issuer.URL)
	assert.Equal(t, []string{"kubernetes"}, cfg.JWT[0].Issuer.Audiences)
	assert.Equal(t, a.IssuerCA, cfg.JWT[0].Issuer.CertificateAuthority)
	assert.Equal(t, "oidc:", cfg.JWT[0].ClaimMappings.Groups.Prefix)
	assert.Equal(t, "groups", cfg.JWT[0].ClaimMappings.Groups.Claim)
}

// TestComponentGraph: what NewRealm registers, with and without the in-cluster sync.
func TestComponentGraph(t *testing.T) {
	run := func(a Args) map[string]resource.PropertyMap {
		m := &pack.Recorder{}
		require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
			_, err := NewRealm(ctx, "sso", &a)
			return err
		}, pulumi.WithMocks("kplane", "test", m)))
		return m.Inputs()
	}
	res := run(testArgs())
	assert.Contains(t, res, "kubernetes:core/v1:ConfigMap sso-realm")
	assert.Contains(t, res, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding sso-team-a-a")
	assert.Equal(t, "admin", res["kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding sso-platform-admins"]["roleRef"].ObjectValue()["name"].StringValue())
	assert.Equal(t, "view", res["kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding sso-auditors"]["roleRef"].ObjectValue()["name"].StringValue())
	assert.NotContains(t, res, "kubernetes:batch/v1:CronJob sso-sync-schedule")

	a := testArgs()
	a.Sync = &Sync{Image: "r/kplane-realm-sync@sha256:" + strings.Repeat("a", 64), AdminSecret: "kc-admin", LDAPSecret: "ldap"}
	res = run(a)
	cron := res["kubernetes:batch/v1:CronJob sso-sync-schedule"]
	require.NotNil(t, cron)
	assert.Equal(t, "*/15 * * * *", cron["spec"].ObjectValue()["schedule"].StringValue())
	job := res["kubernetes:batch/v1:Job sso-sync"]
	require.NotNil(t, job)
	raw, err := json.Marshal(job.Mappable())
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"secretKeyRef":{"key":"bindPassword","name":"ldap"}`)
	assert.Contains(t, string(raw), `"readOnlyRootFilesystem":true`)
	assert.Contains(t, string(raw), `"automountServiceAccountToken":false`)
}
