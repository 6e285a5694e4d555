// Package identity is kplane's identity realm: one Keycloak realm for the platform (settings that
// pass kplane's identity policies, groups per organisation team, LDAP/AD federation with a group
// mapper, a public PKCE client for cluster login, OTP required for administrators through the
// browser flow), the kube-apiserver AuthenticationConfiguration that trusts it (flat group
// names, prefixes, validation rules), and the RBAC that gives each group its rights in a cluster.
package identity

import (
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/internal/field"
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
	// APIClients are applications calling the gateway's APIs: confidential clients with the
	// client-credentials grant only (no user login); the gateway accepts their tokens by azp.
	// Keycloak generates each client's secret; the realm sync never writes one.
	APIClients []APIClient `json:"apiClients,omitempty"`
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

// APIClient is one application calling the gateway (a gateway consumer).
type APIClient struct {
	ClientID string `json:"clientId"`
	// Owner is the team answering for it (recorded on the client).
	Owner string `json:"owner,omitempty"`
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
	URL      string     `json:"url"`              // ldap:// or ldaps://
	Vendor   LDAPVendor `json:"vendor,omitempty"` // other (OpenLDAP, default) or ad
	BindDN   string     `json:"bindDN"`
	UsersDN  string     `json:"usersDN"`
	GroupsDN string     `json:"groupsDN"`
	// The bind password is not an argument: the realm sync reads it from its Secret (a Pulumi
	// secret in the stack), so it never enters the realm representation or a ConfigMap.
}

var (
	name     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	clientID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)
)

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
	root := field.Root()
	var errs field.ErrorList
	u, err := url.Parse(a.KeycloakURL)
	switch {
	case a.KeycloakURL == "":
		errs.Add(field.Required(root.Child("keycloakURL"), "Keycloak's public base URL, e.g. https://sso.example.com"))
	case err != nil || u.Scheme != "https" || u.Host == "":
		errs.Add(field.Invalid(root.Child("keycloakURL"), a.KeycloakURL, "must be an https:// URL (the API server accepts only https issuers)"))
	}
	if !name.MatchString(a.Realm) {
		errs.Add(field.Invalid(root.Child("realm"), a.Realm, "lower-case letters, digits and dashes"))
	}
	if strings.HasPrefix(a.Prefix, "system:") || !strings.HasSuffix(a.Prefix, ":") {
		errs.Add(field.Invalid(root.Child("prefix"), a.Prefix, "must end with ':' and not start with 'system:' (it keeps Keycloak's names apart from Kubernetes' own)"))
	}
	groups := a.validateTeams(&errs)
	a.validateTools(&errs, groups)
	a.validateAPIClients(&errs)
	a.validateIdentityProviders(&errs, groups)
	a.validateSync(&errs)
	if a.Audit != nil {
		errs = append(errs, a.Audit.validate(a)...)
	}
	if l := a.LDAP; l != nil {
		p := root.Child("ldap")
		if lu, err := url.Parse(l.URL); err != nil || (lu.Scheme != "ldap" && lu.Scheme != "ldaps") || lu.Host == "" {
			errs.Add(field.Invalid(p.Child("url"), l.URL, "ldap:// or ldaps:// with a host"))
		}
		if l.BindDN == "" || l.UsersDN == "" || l.GroupsDN == "" {
			errs.Add(field.Required(p, "bindDN, usersDN and groupsDN"))
		}
		errs.Add(field.Enum(p.Child("vendor"), l.Vendor, "", LDAPOther, LDAPActiveDirectory))
	}
	return errs.OrNil()
}

func (a Args) validateAPIClients(errs *field.ErrorList) {
	seen := map[string]bool{a.ClusterClientID: true}
	for _, t := range a.Tools {
		seen[t.Name] = true
	}
	for i, c := range a.APIClients {
		p := field.Root().Child("apiClients").Index(i)
		if !clientID.MatchString(c.ClientID) || seen[c.ClientID] {
			errs.Add(field.Invalid(p.Child("clientId"), c.ClientID, "a unique client ID (letters, digits, '.', '_', '-'), not a tool's or the cluster client's"))
		}
		seen[c.ClientID] = true
	}
}

// validateTeams checks the teams and returns every group name: the teams, administrators and auditors.
func (a Args) validateTeams(errs *field.ErrorList) map[string]bool {
	groups := map[string]bool{a.AdminGroup: true, a.AuditorGroup: true}
	for i, t := range a.Teams {
		p := field.Root().Child("teams").Index(i)
		switch {
		case !name.MatchString(t.Name):
			errs.Add(field.Invalid(p.Child("name"), t.Name, "lower-case letters, digits and dashes (group names are flat: no '/')"))
		case groups[t.Name]:
			errs.Add(field.Invalid(p.Child("name"), t.Name, "used twice (or as the admin/auditor group)"))
		}
		if len(t.Namespaces) == 0 {
			errs.Add(field.Required(p.Child("namespaces"), "at least one"))
		}
		groups[t.Name] = true
	}
	return groups
}

func (a Args) validateTools(errs *field.ErrorList, groups map[string]bool) {
	for i, t := range a.Tools {
		p := field.Root().Child("tools").Index(i)
		if !name.MatchString(t.Name) || t.Name == a.ClusterClientID {
			errs.Add(field.Invalid(p.Child("name"), t.Name, "a client ID of lower-case letters, digits and dashes, not the cluster client's"))
		}
		if len(t.RedirectURIs) == 0 {
			errs.Add(field.Required(p.Child("redirectURIs"), "at least one (the tool's OAuth callback)"))
		}
		for _, role := range slices.Sorted(maps.Keys(t.Roles)) {
			for j, g := range t.Roles[role] {
				if !groups[g] {
					errs.Addf(p.Child("roles").Key(role).Index(j), g, "no such group (groups: the teams, %s, %s)", a.AdminGroup, a.AuditorGroup)
				}
			}
		}
	}
}

func (a Args) validateIdentityProviders(errs *field.ErrorList, groups map[string]bool) {
	aliases := map[string]bool{}
	for i, idp := range a.IdentityProviders {
		p := field.Root().Child("identityProviders").Index(i)
		if !name.MatchString(idp.Alias) || aliases[idp.Alias] {
			errs.Add(field.Invalid(p.Child("alias"), idp.Alias, "unique, lower-case letters, digits and dashes"))
		}
		aliases[idp.Alias] = true
		switch {
		case idp.Type == "oidc" && (idp.ClientID == "" || (idp.Issuer == "" && (idp.AuthorizationURL == "" || idp.TokenURL == "" || idp.JWKSURL == ""))):
			errs.Add(field.Required(p, "oidc needs clientID and issuer (or authorizationURL, tokenURL and jwksURL)"))
		case idp.Type == "saml" && (idp.SingleSignOnURL == "" || idp.EntityID == "" || idp.SigningCertificate == ""):
			errs.Add(field.Required(p, "saml needs singleSignOnURL, entityID and signingCertificate (assertions are verified)"))
		case idp.Type != "oidc" && idp.Type != "saml":
			errs.Add(field.NotSupported(p.Child("type"), idp.Type, "oidc", "saml"))
		}
		for _, attr := range slices.Sorted(maps.Keys(idp.Attributes)) {
			if idp.Type != "saml" || (attr != "email" && attr != "firstName" && attr != "lastName") {
				errs.Add(field.Invalid(p.Child("attributes").Key(attr), idp.Attributes[attr], "SAML providers map email, firstName and lastName"))
			}
		}
		for _, value := range slices.Sorted(maps.Keys(idp.Groups)) {
			switch g := idp.Groups[value]; {
			case !groups[g]:
				errs.Add(field.Invalid(p.Child("groups").Key(value), g, "no such group"))
			case g == a.AdminGroup:
				errs.Add(field.Invalid(p.Child("groups").Key(value), g, "a brokered login cannot make an administrator (administrators log in with kplane's second factor)"))
			}
		}
	}
}

func (a Args) validateSync(errs *field.ErrorList) {
	s := a.Sync
	if s == nil {
		return
	}
	p := field.Root().Child("sync")
	if !addon.Pinned(s.Image) {
		errs.Add(field.Invalid(p.Child("image"), s.Image, "pin kplane-realm-sync by digest (<registry>/kplane-realm-sync@sha256:...)"))
	}
	if s.AdminSecret == "" {
		errs.Add(field.Required(p.Child("adminSecret"), "a Secret with the Keycloak administrator's username and password"))
	}
	if a.LDAP != nil && s.LDAPSecret == "" {
		errs.Add(field.Required(p.Child("ldapSecret"), "with ldap (a Secret with the bind password, key bindPassword)"))
	}
	if slices.ContainsFunc(a.IdentityProviders, func(p IdentityProvider) bool { return p.Type == "oidc" }) && s.IdentityProviderSecret == "" {
		errs.Add(field.Required(p.Child("identityProviderSecret"), "with OIDC identity providers (a Secret with each one's client secret under its alias)"))
	}
}

// Issuer is the realm's issuer URL.
func (a Args) Issuer() string {
	a = a.withDefaults()
	return strings.TrimSuffix(a.KeycloakURL, "/") + "/realms/" + a.Realm
}

// LDAPVendor is the directory's kind: the attribute mappings Keycloak uses.
type LDAPVendor string

// The directories: OpenLDAP and its kin, or Active Directory.
const (
	LDAPOther           LDAPVendor = "other"
	LDAPActiveDirectory LDAPVendor = "ad"
)
