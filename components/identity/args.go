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
	// IdentityProviders are brokered identity providers (several at once, OIDC or SAML, e.g.
	// Azure AD, a partner's Keycloak, ADFS), offered on the login page beside LDAP.
	IdentityProviders []IdentityProvider `json:"identityProviders,omitempty"`
	// Tools are the platform's web tools (Grafana, Argo CD, Kiali, Vault, ...): each gets a public
	// PKCE client whose tokens carry a "roles" claim with the tool's roles of the user's groups, so
	// one identity has the right rights in each tool.
	Tools []Tool `json:"tools,omitempty"`
	// Sync runs the realm sync in the cluster: once per realm change and on a schedule, so a
	// change made by hand in Keycloak is put back.
	Sync *Sync `json:"sync,omitempty"`
	// Audit ships the API server audit log and Keycloak's events to Loki and shows them in Grafana.
	Audit *Audit `json:"audit,omitempty"`
}

// Sync is the in-cluster realm sync (kplane-realm-sync).
type Sync struct {
	// Image of kplane-realm-sync (cmd/kplane-realm-sync), by digest.
	Image string `json:"image"`
	// Schedule of the drift repair (default every 15 minutes).
	Schedule string `json:"schedule,omitempty"`
	// AdminSecret names a Secret in the kplane-identity namespace with keys username and password:
	// a Keycloak administrator (from Vault through the hardened cluster's secrets, or created by hand).
	AdminSecret string `json:"adminSecret"`
	// LDAPSecret names a Secret there with key bindPassword (required with LDAP).
	LDAPSecret string `json:"ldapSecret,omitempty"`
	// IdentityProviderSecret names a Secret there with one key per OIDC provider's alias: the
	// client secret kplane's realm has at that provider (required with OIDC providers).
	IdentityProviderSecret string `json:"identityProviderSecret,omitempty"`
}

// IdentityProvider is one brokered identity provider.
type IdentityProvider struct {
	Alias       string `json:"alias"`
	Type        string `json:"type"` // oidc or saml
	DisplayName string `json:"displayName,omitempty"`
	// OIDC: the provider's issuer (its endpoints are <issuer>/protocol/openid-connect/... for
	// Keycloak, or set them below) and kplane's client there; the client secret comes from the
	// realm sync's environment (KPLANE_IDP_SECRET_<ALIAS>), never from the stack.
	Issuer           string `json:"issuer,omitempty"`
	AuthorizationURL string `json:"authorizationURL,omitempty"`
	TokenURL         string `json:"tokenURL,omitempty"`
	JWKSURL          string `json:"jwksURL,omitempty"`
	ClientID         string `json:"clientID,omitempty"`
	// SAML: the IdP's single sign-on URL, entity ID and signing certificate (PEM body or PEM).
	SingleSignOnURL    string `json:"singleSignOnURL,omitempty"`
	EntityID           string `json:"entityID,omitempty"`
	SigningCertificate string `json:"signingCertificate,omitempty"`
	// Groups maps a value of the provider's "groups" claim (attribute for SAML) to a kplane group.
	Groups map[string]string `json:"groups,omitempty"`
	// Attributes (SAML) names the assertion attributes of the user's profile: email, firstName
	// and lastName (default the same names, as Keycloak sends them; Azure AD and ADFS send
	// http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress, .../givenname,
	// .../surname). Without them a brokered user must fill in a profile page at first login.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// SecretPlaceholder stands for an OIDC provider's client secret in the representation.
func (p IdentityProvider) SecretPlaceholder() string {
	return "${KPLANE_IDP_SECRET_" + strings.ToUpper(strings.ReplaceAll(p.Alias, "-", "_")) + "}"
}

// Tool is one web tool's client and its roles.
type Tool struct {
	// Name is the client ID (e.g. grafana, argocd, kiali, vault).
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirectURIs"`
	// Roles maps each of the tool's roles to the groups that hold it (default: admin to the admin
	// group, edit to every team, view to the auditors).
	Roles map[string][]string `json:"roles,omitempty"`
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
	var teams []string
	for i := range a.Teams {
		def(&a.Teams[i].ClusterRole, "edit")
		teams = append(teams, a.Teams[i].Name)
	}
	a.Tools = slices.Clone(a.Tools)
	for i := range a.Tools {
		if len(a.Tools[i].Roles) == 0 {
			a.Tools[i].Roles = map[string][]string{"admin": {a.AdminGroup}, "edit": teams, "view": {a.AuditorGroup}}
		}
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
	groups := map[string]bool{a.AdminGroup: true, a.AuditorGroup: true}
	for _, t := range a.Teams {
		groups[t.Name] = true
	}
	for i, t := range a.Tools {
		switch {
		case !name.MatchString(t.Name) || t.Name == a.ClusterClientID:
			return fmt.Errorf("tools[%d].name %q: a client ID of lower-case letters, digits and dashes, not the cluster client's", i, t.Name)
		case len(t.RedirectURIs) == 0:
			return fmt.Errorf("tools[%d] %s: redirectURIs: at least one (the tool's OAuth callback)", i, t.Name)
		}
		for role, gs := range t.Roles {
			for _, g := range gs {
				if !groups[g] {
					return fmt.Errorf("tools[%d] %s: role %s: no group %q (groups: the teams, %s, %s)", i, t.Name, role, g, a.AdminGroup, a.AuditorGroup)
				}
			}
		}
	}
	aliases := map[string]bool{}
	for i, p := range a.IdentityProviders {
		switch {
		case !name.MatchString(p.Alias) || aliases[p.Alias]:
			return fmt.Errorf("identityProviders[%d].alias %q: unique, lower-case letters, digits and dashes", i, p.Alias)
		case p.Type == "oidc" && (p.ClientID == "" || (p.Issuer == "" && (p.AuthorizationURL == "" || p.TokenURL == "" || p.JWKSURL == ""))):
			return fmt.Errorf("identityProviders[%d] %s: oidc needs clientID and issuer (or authorizationURL, tokenURL and jwksURL)", i, p.Alias)
		case p.Type == "saml" && (p.SingleSignOnURL == "" || p.EntityID == "" || p.SigningCertificate == ""):
			return fmt.Errorf("identityProviders[%d] %s: saml needs singleSignOnURL, entityID and signingCertificate (assertions are verified)", i, p.Alias)
		case p.Type != "oidc" && p.Type != "saml":
			return fmt.Errorf("identityProviders[%d] %s: type %q: oidc or saml", i, p.Alias, p.Type)
		}
		for attr := range p.Attributes {
			if p.Type != "saml" || (attr != "email" && attr != "firstName" && attr != "lastName") {
				return fmt.Errorf("identityProviders[%d] %s: attributes[%q]: SAML providers map email, firstName and lastName", i, p.Alias, attr)
			}
		}
		for value, g := range p.Groups {
			switch {
			case !groups[g]:
				return fmt.Errorf("identityProviders[%d] %s: groups[%q]: no group %q", i, p.Alias, value, g)
			case g == a.AdminGroup:
				return fmt.Errorf("identityProviders[%d] %s: groups[%q]: a brokered login cannot make an administrator (administrators log in with kplane's second factor)", i, p.Alias, value)
			}
		}
		aliases[p.Alias] = true
	}
	if s := a.Sync; s != nil {
		switch {
		case !strings.Contains(s.Image, "@sha256:"):
			return fmt.Errorf("sync.image %q: pin kplane-realm-sync by digest (<registry>/kplane-realm-sync@sha256:...)", s.Image)
		case s.AdminSecret == "":
			return fmt.Errorf("sync.adminSecret: required (a Secret with the Keycloak administrator's username and password)")
		case a.LDAP != nil && s.LDAPSecret == "":
			return fmt.Errorf("sync.ldapSecret: required with ldap (a Secret with the bind password, key bindPassword)")
		case slices.ContainsFunc(a.IdentityProviders, func(p IdentityProvider) bool { return p.Type == "oidc" }) && s.IdentityProviderSecret == "":
			return fmt.Errorf("sync.identityProviderSecret: required with OIDC identity providers (a Secret with each one's client secret under its alias)")
		}
	}
	if a.Audit != nil {
		if err := a.Audit.validate(a); err != nil {
			return err
		}
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
