package fleetmember

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/internal/field"
)

// Login is how people log in to the fleet's Argo CD: through the identity realm, as its tool
// client (identity.Tool: a public client with PKCE whose tokens carry the user's roles in that
// tool in a "roles" claim), each role of the tool mapped to an Argo CD role. Nobody else gets in:
// the default policy grants nothing.
type Login struct {
	// Issuer is the realm's issuer (identity.Args.Issuer()); RootCA the PEM its TLS chains to,
	// when not a public CA.
	Issuer string `json:"issuer"`
	RootCA string `json:"rootCA,omitempty"`
	// ClientID is the realm's tool client for Argo CD (default argocd).
	ClientID string `json:"clientID,omitempty"`
	// URL is Argo CD's external URL (its callback is URL/auth/callback, a redirect URI of the
	// tool client).
	URL string `json:"url"`
	// Roles maps the tool's roles to Argo CD's roles (default admin -> role:admin, edit ->
	// role:kplane-operator, view -> role:readonly).
	Roles map[string]string `json:"roles,omitempty"`
	// GrafanaURL is the fleet Grafana's external URL (kplane-fleet prometheus writes its
	// grafana.ini to log in through the realm as the tool client GrafanaClient, default grafana).
	GrafanaURL    string `json:"grafanaURL,omitempty"`
	GrafanaClient string `json:"grafanaClient,omitempty"`
}

// DefaultLoginRoles are the tool's default roles (identity.Tool) as Argo CD's.
var DefaultLoginRoles = map[string]string{"admin": "role:admin", "edit": "role:kplane-operator", "view": "role:readonly"}

// operatorPolicy is role:kplane-operator: read everything, sync and refresh the platform's
// Applications, change nothing else (no clusters, projects, repositories or accounts).
var operatorPolicy = []string{
	"p, role:kplane-operator, applications, get, */*, allow",
	"p, role:kplane-operator, applications, sync, */*, allow",
	"p, role:kplane-operator, applications, action/*, */*, deny",
	"p, role:kplane-operator, applicationsets, get, */*, allow",
	"p, role:kplane-operator, projects, get, *, allow",
	"p, role:kplane-operator, clusters, get, *, allow",
	"p, role:kplane-operator, logs, get, */*, allow",
}

// Validate names the argument and the fix.
func (l Login) Validate() error {
	var errs field.ErrorList
	for _, c := range []struct{ key, v, fix string }{{"issuer", l.Issuer, "the realm's issuer, https://<keycloak>/realms/<realm>"},
		{"url", l.URL, "Argo CD's external https:// URL"}} {
		if u, err := url.Parse(c.v); err != nil || u.Scheme != "https" || u.Host == "" {
			errs.Add(field.Invalid(field.At("%s", c.key), c.v, c.fix))
		}
	}
	if u, err := url.Parse(l.GrafanaURL); l.GrafanaURL != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		errs.Add(field.Invalid(field.At("grafanaURL"), l.GrafanaURL, "the fleet Grafana's external https:// URL"))
	}
	if l.RootCA != "" && !strings.Contains(l.RootCA, "BEGIN CERTIFICATE") {
		errs.Add(field.Invalid(field.At("rootCA"), nil, "a PEM certificate"))
	}
	for _, role := range slices.Sorted(maps.Keys(l.Roles)) {
		if v := l.Roles[role]; !strings.HasPrefix(v, "role:") {
			errs.Add(field.Invalid(field.At("roles").Key(role), v, `an Argo CD role, "role:<name>"`))
		}
	}
	return errs.OrNil()
}

// ArgoCDSettings are the keys kplane sets in argocd-cm (url, oidc.config) and argocd-rbac-cm
// (policy.default: nothing, policy.csv: the tool's roles as Argo CD's, scopes: the roles claim).
func (l Login) ArgoCDSettings() (cm, rbac map[string]string, err error) {
	client := l.ClientID
	if client == "" {
		client = "argocd"
	}
	oidc := map[string]any{"name": "kplane", "issuer": l.Issuer, "clientID": client, "enablePKCEAuthentication": true,
		"requestedScopes": []string{"openid", "profile", "email"}}
	if l.RootCA != "" {
		oidc["rootCA"] = l.RootCA
	}
	raw, err := yaml.Marshal(oidc)
	if err != nil {
		return nil, nil, err
	}
	roles := l.Roles
	if len(roles) == 0 {
		roles = DefaultLoginRoles
	}
	policy := slices.Clone(operatorPolicy)
	for _, role := range slices.Sorted(maps.Keys(roles)) {
		policy = append(policy, fmt.Sprintf("g, %s, %s", role, roles[role]))
	}
	return map[string]string{"url": l.URL, "oidc.config": string(raw)},
		map[string]string{"policy.default": "", "policy.csv": strings.Join(policy, "\n") + "\n", "scopes": "[roles]"}, nil
}
