// Package realmsync makes a Keycloak realm what its representation says, through Keycloak's
// admin REST API: it creates the realm when missing and, unlike a realm import (which skips
// realms that exist), puts back every setting, client, protocol mapper, role, group, user
// federation, identity provider and flow step requirement that has drifted, and removes what the
// realm does not declare (clients, identity providers, flows, groups, role mappings of groups
// and users, realm-management's grants included; Keycloak's built-ins stay). It reports what it
// changed, so a second run reports nothing. One file per concern: realm settings and the API
// (this one), groups, clients, federation (LDAP and identity providers), flows.
package realmsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/kplane/kplane/internal/anymap"
)

// Client talks to one Keycloak as a master-realm administrator.
type Client struct {
	BaseURL       string // e.g. https://sso.example.com
	HTTP          *http.Client
	AdminUser     string
	AdminPassword string
	// ReportOnly: what the realm does not declare is listed ("would remove ..."), not removed.
	ReportOnly bool
	token      string
}

// nested are the realm representation's parts synchronised one by one, not as realm settings.
var nested = []string{"roles", "groups", "clients", "components", "authenticationFlows", "authenticatorConfig", "users", "identityProviders", "identityProviderMappers"}

// Apply makes the realm match rep, with each secret placeholder "${NAME}" (the LDAP bind
// password, identity providers' client secrets) replaced by secret(NAME). It returns a line per
// change made (none: the realm already matched).
func (c *Client) Apply(ctx context.Context, rep map[string]any, secret func(name string) (string, bool)) ([]string, error) {
	rep, err := withSecrets(rep, secret)
	if err != nil {
		return nil, err
	}
	if err := c.login(ctx); err != nil {
		return nil, err
	}
	realm, _ := rep["realm"].(string)
	if err := c.testLDAP(ctx, rep); err != nil {
		return nil, err
	}
	var current map[string]any
	status, err := c.do(ctx, "GET", "/admin/realms/"+url.PathEscape(realm), nil, &current)
	if err != nil && status != http.StatusNotFound {
		return nil, err
	}
	created := status == http.StatusNotFound
	if created {
		// Keycloak imports flow overrides by id, which a new realm has not given yet: the
		// clients step below binds them.
		create := maps.Clone(rep)
		var clients []any
		for _, cl := range anymap.List(rep["clients"]) {
			cl = maps.Clone(cl)
			delete(cl, "authenticationFlowBindingOverrides")
			clients = append(clients, cl)
		}
		create["clients"] = clients
		if _, err := c.do(ctx, "POST", "/admin/realms", create, nil); err != nil {
			return nil, fmt.Errorf("creating realm %s: %w", realm, err)
		}
		if _, err := c.do(ctx, "GET", "/admin/realms/"+url.PathEscape(realm), nil, &current); err != nil {
			return nil, err
		}
	}
	var changes []string
	// Settings: every scalar the representation states.
	settings := map[string]any{}
	for k, v := range rep {
		if !slices.Contains(nested, k) && !same(current[k], v) {
			settings[k] = v
			changes = append(changes, fmt.Sprintf("realm %s: %s %v -> %v", realm, k, current[k], v))
		}
	}
	if len(settings) > 0 {
		merged := map[string]any{}
		for k, v := range current {
			if !slices.Contains(nested, k) {
				merged[k] = v
			}
		}
		for k, v := range settings {
			merged[k] = v
		}
		if _, err := c.do(ctx, "PUT", "/admin/realms/"+url.PathEscape(realm), merged, nil); err != nil {
			return nil, fmt.Errorf("realm %s settings: %w", realm, err)
		}
	}
	base := "/admin/realms/" + url.PathEscape(realm)
	for _, step := range []func(context.Context, string, map[string]any) ([]string, error){c.roles, c.flows, c.clients, c.clientRoles, c.groups, c.components, c.identityProviders, c.prune} {
		more, err := step(ctx, base, rep)
		if err != nil {
			return changes, err
		}
		changes = append(changes, more...)
	}
	if created { // what the steps completed is part of the creation
		return []string{"created realm " + realm}, nil
	}
	slices.Sort(changes)
	return changes, nil
}

// Do makes one admin API call (logging in first when needed); out receives the JSON answer.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	if c.token == "" {
		if err := c.login(ctx); err != nil {
			return err
		}
	}
	_, err := c.do(ctx, method, path, body, out)
	return err
}

// login gets an admin token (admin-cli, master realm).
func (c *Client) login(ctx context.Context) error {
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {c.AdminUser}, "password": {c.AdminPassword}}
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(c.BaseURL, "/")+"/realms/master/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("keycloak %s unreachable: %w (check the URL, the network path and the CA)", c.BaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("keycloak %s: admin login as %s refused (HTTP %d): check the admin credentials Secret", c.BaseURL, c.AdminUser, resp.StatusCode)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return err
	}
	c.token = tok.AccessToken
	return nil
}

// do calls the admin API; out, when given, receives the JSON answer. When Keycloak no longer
// accepts the token (an admin token lives 60 s by default, and a large realm's sync, or a slow
// Keycloak, outlives it), it logs in again once and repeats the call.
func (c *Client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	status, err := c.send(ctx, method, path, body, out)
	if status != http.StatusUnauthorized || c.AdminUser == "" {
		return status, err
	}
	if err := c.login(ctx); err != nil {
		return status, err
	}
	return c.send(ctx, method, path, body, out)
}

// send is one admin API call. Errors carry Keycloak's message but never the request body (it
// may hold the bind password).
func (c *Client) send(ctx context.Context, method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil && len(raw) > 0 {
		return resp.StatusCode, json.Unmarshal(raw, out)
	}
	return resp.StatusCode, nil
}

var placeholder = regexp.MustCompile(`"\$\{(KPLANE_[A-Z0-9_]+)\}"`)

// withSecrets copies rep with every secret placeholder replaced by its value.
func withSecrets(rep map[string]any, secret func(string) (string, bool)) (map[string]any, error) {
	raw, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	var missing []string
	raw = placeholder.ReplaceAllFunc(raw, func(m []byte) []byte {
		name := string(placeholder.FindSubmatch(m)[1])
		v, ok := secret(name)
		if !ok || v == "" {
			missing = append(missing, name)
			return m
		}
		quoted, _ := json.Marshal(v)
		return quoted
	})
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("secrets %s: not set (the sync's environment, from the Secrets the component names)", strings.Join(slices.Compact(missing), ", "))
	}
	var out map[string]any
	return out, json.Unmarshal(raw, &out)
}

// same compares JSON values (numbers as Keycloak returns them, lists in order).
func same(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	return reflect.DeepEqual(x, y)
}

// sameSet compares lists as sets (Keycloak keeps redirect URIs and web origins unordered), other
// values as same does.
func sameSet(a, b any) bool {
	la, oka := a.([]any)
	lb, okb := b.([]any)
	if !oka || !okb {
		return same(a, b)
	}
	sa, sb := anymap.Strings(la), anymap.Strings(lb)
	slices.Sort(sa)
	slices.Sort(sb)
	return slices.Equal(sa, sb)
}

// covers tells whether the object have holds every key of want with its value (Keycloak adds
// defaults of its own to configurations).
func covers(have, want any) bool {
	h, _ := have.(map[string]any)
	w, _ := want.(map[string]any)
	for k, v := range w {
		if !same(h[k], v) {
			return false
		}
	}
	return true
}
