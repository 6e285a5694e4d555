package identity

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
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
		{func(a *Args) { a.Teams[0].Namespaces = nil }, "namespaces: at least one"},
		{func(a *Args) { a.LDAP.URL = "ldapx://x" }, "ldap.url"},
		{func(a *Args) { a.LDAP.GroupsDN = "" }, "groupsDN"},
		{func(a *Args) { a.Teams[0].Name = "platform-admins" }, "used twice (or as the admin/auditor group)"},
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
