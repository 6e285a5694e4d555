// Package identity is kplane's identity realm: one Keycloak realm for the platform (settings that
// pass kplane's identity policies, groups per organisation team, LDAP/AD federation with a group
// mapper, a public PKCE client for cluster login, OTP required for administrators through the
// browser flow), the kube-apiserver AuthenticationConfiguration that trusts it (flat group
// names, prefixes, validation rules), and the RBAC that gives each group its rights in a cluster.
package identity

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Args of an identity realm.
type Args struct {
	// Realm is the Keycloak realm's name (default "kplane").
	Realm string `json:"realm,omitempty"`
	// KeycloakURL is Keycloak's public base URL (https), e.g. https://sso.example.com: the
	// issuer the API servers trust is <KeycloakURL>/realms/<Realm>.
	KeycloakURL string `json:"keycloakURL"`
	// IssuerCA is the PEM of the CA that signed Keycloak's serving certificate, when it is not
	// one the API server trusts already.
	IssuerCA string `json:"issuerCA,omitempty"`
	// ClusterClientID is the public OIDC client kubectl logs in with (default "kubernetes").
	ClusterClientID string `json:"clusterClientID,omitempty"`
	// RedirectURIs of the cluster login client (default kubelogin's loopback ports 8000, 18000).
	RedirectURIs []string `json:"redirectURIs,omitempty"`
	// Prefix of usernames and groups in the cluster (default "oidc:"): never collides with system:.
	Prefix string `json:"prefix,omitempty"`
	// Teams are Keycloak groups whose members edit their namespaces.
	Teams []Team `json:"teams,omitempty"`
	// AdminGroup's members administer the platform (default "platform-admins"); they must log in
	// with a second factor.
	AdminGroup string `json:"adminGroup,omitempty"`
	// AuditorGroup's members read everything but Secrets (default "auditors").
	AuditorGroup string `json:"auditorGroup,omitempty"`
	// LDAP federates users and groups from LDAP or Active Directory (read-only).
	LDAP *LDAP `json:"ldap,omitempty"`
}

// Team is one Keycloak group and the namespaces its members work in.
type Team struct {
	Name       string   `json:"name"`
	Namespaces []string `json:"namespaces"`
	// ClusterRole bound in each namespace (default "edit").
	ClusterRole string `json:"clusterRole,omitempty"`
}

// LDAP is a read-only user federation with a group mapper.
type LDAP struct {
	URL      string `json:"url"`              // ldap:// or ldaps://
	Vendor   string `json:"vendor,omitempty"` // other (OpenLDAP, default) or ad
	BindDN   string `json:"bindDN"`
	UsersDN  string `json:"usersDN"`
	GroupsDN string `json:"groupsDN"`
	// The bind password is not an argument: the realm sync reads it from its Secret (a Pulumi
	// secret in the stack), so it never enters the realm representation or a ConfigMap.
}

var name = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// withDefaults returns a copy with defaults filled in.
func (a Args) withDefaults() Args {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&a.Realm, "kplane")
	def(&a.ClusterClientID, "kubernetes")
	def(&a.Prefix, "oidc:")
	def(&a.AdminGroup, "platform-admins")
	def(&a.AuditorGroup, "auditors")
	if len(a.RedirectURIs) == 0 {
		a.RedirectURIs = []string{"http://localhost:8000", "http://localhost:18000", "http://127.0.0.1:8000", "http://127.0.0.1:18000"}
	}
	a.Teams = slices.Clone(a.Teams)
	for i := range a.Teams {
		def(&a.Teams[i].ClusterRole, "edit")
	}
	return a
}

// Validate refuses arguments that cannot make a working realm, naming the argument and the fix.
func (a Args) Validate() error {
	a = a.withDefaults()
	u, err := url.Parse(a.KeycloakURL)
	switch {
	case a.KeycloakURL == "":
		return fmt.Errorf("keycloakURL: required (Keycloak's public base URL, e.g. https://sso.example.com)")
	case err != nil || u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("keycloakURL %q: must be an https:// URL (the API server accepts only https issuers)", a.KeycloakURL)
	case !name.MatchString(a.Realm):
		return fmt.Errorf("realm %q: lower-case letters, digits and dashes", a.Realm)
	case strings.HasPrefix(a.Prefix, "system:") || !strings.HasSuffix(a.Prefix, ":"):
		return fmt.Errorf("prefix %q: must end with ':' and not start with 'system:' (it keeps Keycloak's names apart from Kubernetes' own)", a.Prefix)
	}
	seen := map[string]bool{a.AdminGroup: true, a.AuditorGroup: true}
	for i, t := range a.Teams {
		switch {
		case !name.MatchString(t.Name):
			return fmt.Errorf("teams[%d].name %q: lower-case letters, digits and dashes (group names are flat: no '/')", i, t.Name)
		case seen[t.Name]:
			return fmt.Errorf("teams[%d].name %q: used twice (or as the admin/auditor group)", i, t.Name)
		case len(t.Namespaces) == 0:
			return fmt.Errorf("teams[%d] %s: namespaces: at least one", i, t.Name)
		}
		seen[t.Name] = true
	}
	if l := a.LDAP; l != nil {
		lu, err := url.Parse(l.URL)
		switch {
		case err != nil || (lu.Scheme != "ldap" && lu.Scheme != "ldaps") || lu.Host == "":
			return fmt.Errorf("ldap.url %q: ldap:// or ldaps:// with a host", l.URL)
		case l.BindDN == "" || l.UsersDN == "" || l.GroupsDN == "":
			return fmt.Errorf("ldap: bindDN, usersDN and groupsDN are required")
		case l.Vendor != "" && l.Vendor != "other" && l.Vendor != "ad":
			return fmt.Errorf("ldap.vendor %q: other (OpenLDAP) or ad", l.Vendor)
		}
	}
	return nil
}

// Issuer is the realm's issuer URL.
func (a Args) Issuer() string {
	a = a.withDefaults()
	return strings.TrimSuffix(a.KeycloakURL, "/") + "/realms/" + a.Realm
}
