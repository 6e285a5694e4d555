package identity

import "strings"

// GrafanaLogin is grafana.ini's sections for logging in to a Grafana at rootURL through the realm
// (issuer) as its tool client: a public PKCE client, so no client secret exists to leak; the
// Grafana role comes from the tool's roles in the token's "roles" claim (admin, edit, view), and
// anyone without one is refused (role_attribute_strict); the login form is off.
func GrafanaLogin(issuer, clientID, rootURL string) map[string]any {
	base := strings.TrimSuffix(issuer, "/") + "/protocol/openid-connect"
	return map[string]any{
		"server": map[string]any{"root_url": rootURL},
		"auth":   map[string]any{"disable_login_form": true},
		"auth.generic_oauth": map[string]any{
			"enabled": true, "name": "kplane", "client_id": clientID, "use_pkce": true, "scopes": "openid profile email",
			"auth_url": base + "/auth", "token_url": base + "/token", "api_url": base + "/userinfo",
			"role_attribute_path":   "contains(roles[*], 'admin') && 'Admin' || contains(roles[*], 'edit') && 'Editor' || contains(roles[*], 'view') && 'Viewer'",
			"role_attribute_strict": true, "allow_sign_up": true, "groups_attribute_path": "groups",
		},
	}
}
