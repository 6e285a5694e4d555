// Package realmsync makes a Keycloak realm what its representation says, through Keycloak's
// admin REST API: it creates the realm when missing and, unlike a realm import (which skips
// realms that exist), puts back every setting, client, protocol mapper, role, group and user
// federation that has drifted. It reports what it changed, so a second run reports nothing.
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
	token         string
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
	if status == http.StatusNotFound {
		if _, err := c.do(ctx, "POST", "/admin/realms", rep, nil); err != nil {
			return nil, fmt.Errorf("creating realm %s: %w", realm, err)
		}
		return []string{"created realm " + realm}, nil
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
	for _, step := range []func(context.Context, string, map[string]any) ([]string, error){c.roles, c.clients, c.clientRoles, c.groups, c.components, c.identityProviders, c.flows} {
		more, err := step(ctx, base, rep)
		if err != nil {
			return changes, err
		}
		changes = append(changes, more...)
	}
	slices.Sort(changes)
	return changes, nil
}

func (c *Client) roles(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	var changes []string
	for _, r := range anymap.List(anymap.Get(rep, "roles", "realm")) {
		name, _ := r["name"].(string)
		status, err := c.do(ctx, "GET", base+"/roles/"+url.PathEscape(name), nil, nil)
		if status == http.StatusNotFound {
			if _, err := c.do(ctx, "POST", base+"/roles", r, nil); err != nil {
				return nil, fmt.Errorf("role %s: %w", name, err)
			}
			changes = append(changes, "created role "+name)
		} else if err != nil {
			return nil, err
		}
	}
	return changes, nil
}

func (c *Client) groups(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	var changes []string
	for _, g := range anymap.List(rep["groups"]) {
		name, _ := g["name"].(string)
		var found []map[string]any
		if _, err := c.do(ctx, "GET", base+"/groups?exact=true&search="+url.QueryEscape(name), nil, &found); err != nil {
			return nil, err
		}
		id := ""
		for _, f := range found {
			if f["name"] == name {
				id, _ = f["id"].(string)
			}
		}
		if id == "" {
			if _, err := c.do(ctx, "POST", base+"/groups", map[string]any{"name": name}, nil); err != nil {
				return nil, fmt.Errorf("group %s: %w", name, err)
			}
			changes = append(changes, "created group "+name)
			if _, err := c.do(ctx, "GET", base+"/groups?exact=true&search="+url.QueryEscape(name), nil, &found); err != nil || len(found) == 0 {
				return nil, fmt.Errorf("group %s: created but not found: %v", name, err)
			}
			id, _ = found[0]["id"].(string)
		}
		var mapped []map[string]any
		if _, err := c.do(ctx, "GET", base+"/groups/"+id+"/role-mappings/realm", nil, &mapped); err != nil {
			return nil, err
		}
		for _, role := range anymap.Strings(g["realmRoles"]) {
			if slices.ContainsFunc(mapped, func(m map[string]any) bool { return m["name"] == role }) {
				continue
			}
			var r map[string]any
			if _, err := c.do(ctx, "GET", base+"/roles/"+url.PathEscape(role), nil, &r); err != nil {
				return nil, fmt.Errorf("group %s role %s: %w", name, role, err)
			}
			if _, err := c.do(ctx, "POST", base+"/groups/"+id+"/role-mappings/realm", []any{r}, nil); err != nil {
				return nil, fmt.Errorf("group %s role %s: %w", name, role, err)
			}
			changes = append(changes, fmt.Sprintf("group %s: granted role %s", name, role))
		}
		clientRoles, _ := g["clientRoles"].(map[string]any)
		for _, clientID := range slices.Sorted(maps.Keys(clientRoles)) {
			uuid, err := c.clientUUID(ctx, base, clientID)
			if err != nil {
				return nil, err
			}
			var mapped []map[string]any
			if _, err := c.do(ctx, "GET", base+"/groups/"+id+"/role-mappings/clients/"+uuid, nil, &mapped); err != nil {
				return nil, err
			}
			for _, role := range anymap.Strings(clientRoles[clientID]) {
				if slices.ContainsFunc(mapped, func(m map[string]any) bool { return m["name"] == role }) {
					continue
				}
				var r map[string]any
				if _, err := c.do(ctx, "GET", base+"/clients/"+uuid+"/roles/"+url.PathEscape(role), nil, &r); err != nil {
					return nil, fmt.Errorf("group %s: %s role %s: %w", name, clientID, role, err)
				}
				if _, err := c.do(ctx, "POST", base+"/groups/"+id+"/role-mappings/clients/"+uuid, []any{r}, nil); err != nil {
					return nil, fmt.Errorf("group %s: %s role %s: %w", name, clientID, role, err)
				}
				changes = append(changes, fmt.Sprintf("group %s: granted %s role %s", name, clientID, role))
			}
		}
	}
	return changes, nil
}

// clientRoles creates the tools' client roles that are missing.
func (c *Client) clientRoles(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	var changes []string
	roles, _ := anymap.Get(rep, "roles", "client").(map[string]any)
	for _, clientID := range slices.Sorted(maps.Keys(roles)) {
		uuid, err := c.clientUUID(ctx, base, clientID)
		if err != nil {
			return nil, err
		}
		for _, r := range anymap.List(roles[clientID]) {
			name, _ := r["name"].(string)
			status, err := c.do(ctx, "GET", base+"/clients/"+uuid+"/roles/"+url.PathEscape(name), nil, nil)
			if status == http.StatusNotFound {
				if _, err := c.do(ctx, "POST", base+"/clients/"+uuid+"/roles", r, nil); err != nil {
					return nil, fmt.Errorf("%s role %s: %w", clientID, name, err)
				}
				changes = append(changes, fmt.Sprintf("client %s: created role %s", clientID, name))
			} else if err != nil {
				return nil, err
			}
		}
	}
	return changes, nil
}

func (c *Client) clientUUID(ctx context.Context, base, clientID string) (string, error) {
	var found []map[string]any
	if _, err := c.do(ctx, "GET", base+"/clients?clientId="+url.QueryEscape(clientID), nil, &found); err != nil {
		return "", err
	}
	if len(found) == 0 {
		return "", fmt.Errorf("client %s: not found", clientID)
	}
	return fmt.Sprint(found[0]["id"]), nil
}

// clientFields are the client settings kept as declared.
var clientFields = []string{"name", "enabled", "publicClient", "standardFlowEnabled", "directAccessGrantsEnabled", "implicitFlowEnabled",
	"serviceAccountsEnabled", "redirectUris", "webOrigins", "protocol"}

func (c *Client) clients(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	var changes []string
	for _, want := range anymap.List(rep["clients"]) {
		clientID, _ := want["clientId"].(string)
		var found []map[string]any
		if _, err := c.do(ctx, "GET", base+"/clients?clientId="+url.QueryEscape(clientID), nil, &found); err != nil {
			return nil, err
		}
		if len(found) == 0 {
			if _, err := c.do(ctx, "POST", base+"/clients", want, nil); err != nil {
				return nil, fmt.Errorf("client %s: %w", clientID, err)
			}
			changes = append(changes, "created client "+clientID)
			continue
		}
		have := found[0]
		id, _ := have["id"].(string)
		drift := false
		for _, f := range clientFields {
			if w, ok := want[f]; ok && !sameSet(have[f], w) {
				changes = append(changes, fmt.Sprintf("client %s: %s %v -> %v", clientID, f, have[f], w))
				have[f], drift = w, true
			}
		}
		attrs, _ := have["attributes"].(map[string]any)
		if attrs == nil {
			attrs = map[string]any{}
		}
		wantAttrs, _ := want["attributes"].(map[string]any)
		for k, w := range wantAttrs {
			if attrs[k] != w {
				changes = append(changes, fmt.Sprintf("client %s: attribute %s %v -> %v", clientID, k, attrs[k], w))
				attrs[k], drift = w, true
			}
		}
		have["attributes"] = attrs
		if drift {
			delete(have, "protocolMappers")
			if _, err := c.do(ctx, "PUT", base+"/clients/"+id, have, nil); err != nil {
				return nil, fmt.Errorf("client %s: %w", clientID, err)
			}
		}
		var mappers []map[string]any
		if _, err := c.do(ctx, "GET", base+"/clients/"+id+"/protocol-mappers/models", nil, &mappers); err != nil {
			return nil, err
		}
		for _, m := range anymap.List(want["protocolMappers"]) {
			i := slices.IndexFunc(mappers, func(h map[string]any) bool { return h["name"] == m["name"] })
			switch {
			case i < 0:
				if _, err := c.do(ctx, "POST", base+"/clients/"+id+"/protocol-mappers/models", m, nil); err != nil {
					return nil, fmt.Errorf("client %s mapper %v: %w", clientID, m["name"], err)
				}
				changes = append(changes, fmt.Sprintf("client %s: created mapper %v", clientID, m["name"]))
			case !covers(mappers[i]["config"], m["config"]) || mappers[i]["protocolMapper"] != m["protocolMapper"]:
				upd := map[string]any{"id": mappers[i]["id"]}
				for k, v := range m {
					upd[k] = v
				}
				if _, err := c.do(ctx, "PUT", base+"/clients/"+id+"/protocol-mappers/models/"+fmt.Sprint(mappers[i]["id"]), upd, nil); err != nil {
					return nil, fmt.Errorf("client %s mapper %v: %w", clientID, m["name"], err)
				}
				changes = append(changes, fmt.Sprintf("client %s: mapper %v restored", clientID, m["name"]))
			}
		}
	}
	return changes, nil
}

// flows keeps the requirement of every execution of the realm's own authentication flows (so an
// OTP step switched off by hand is switched back on). A flow or step deleted by hand is an error
// that names it: recreate it (or the realm) rather than guess its configuration.
func (c *Client) flows(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	flows := map[string]map[string]any{}
	for _, f := range anymap.List(rep["authenticationFlows"]) {
		flows[fmt.Sprint(f["alias"])] = f
	}
	var changes []string
	for _, top := range anymap.List(rep["authenticationFlows"]) {
		if top["topLevel"] != true {
			continue
		}
		alias := fmt.Sprint(top["alias"])
		var have []map[string]any
		if _, err := c.do(ctx, "GET", base+"/authentication/flows/"+url.PathEscape(alias)+"/executions", nil, &have); err != nil {
			return nil, fmt.Errorf("authentication flow %s: %w (recreate it, or the realm)", alias, err)
		}
		// Walk the declared tree in order, as Keycloak lists it flattened (depth-first, level).
		var walk func(flow string, level int) error
		walk = func(flow string, level int) error {
			for _, e := range anymap.List(flows[flow]["authenticationExecutions"]) {
				sub, _ := e["flowAlias"].(string)
				i := slices.IndexFunc(have, func(h map[string]any) bool {
					if fmt.Sprint(h["level"]) != fmt.Sprint(level) {
						return false
					}
					if sub != "" {
						return h["authenticationFlow"] == true && h["displayName"] == sub
					}
					return h["providerId"] == e["authenticator"]
				})
				what := fmt.Sprint(e["authenticator"])
				if sub != "" {
					what = sub
				}
				if i < 0 {
					return fmt.Errorf("authentication flow %s: step %s is missing (deleted by hand? recreate it, or the realm)", flow, what)
				}
				if want := fmt.Sprint(e["requirement"]); have[i]["requirement"] != want {
					upd := map[string]any{}
					for k, v := range have[i] {
						upd[k] = v
					}
					upd["requirement"] = want
					if _, err := c.do(ctx, "PUT", base+"/authentication/flows/"+url.PathEscape(alias)+"/executions", upd, nil); err != nil {
						return fmt.Errorf("authentication flow %s step %s: %w", flow, what, err)
					}
					changes = append(changes, fmt.Sprintf("authentication flow %s: %s %v -> %s", flow, what, have[i]["requirement"], want))
				}
				if sub != "" {
					if err := walk(sub, level+1); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if err := walk(alias, 0); err != nil {
			return nil, err
		}
	}
	return changes, nil
}

// identityProviders keeps the brokered providers and their group mappers as declared.
func (c *Client) identityProviders(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	var changes []string
	for _, want := range anymap.List(rep["identityProviders"]) {
		alias, _ := want["alias"].(string)
		var have map[string]any
		status, err := c.do(ctx, "GET", base+"/identity-provider/instances/"+url.PathEscape(alias), nil, &have)
		switch {
		case status == http.StatusNotFound:
			if _, err := c.do(ctx, "POST", base+"/identity-provider/instances", want, nil); err != nil {
				return nil, fmt.Errorf("identity provider %s: %w", alias, err)
			}
			changes = append(changes, "created identity provider "+alias)
		case err != nil:
			return nil, err
		default:
			wantConfig, _ := want["config"].(map[string]any)
			haveConfig, _ := have["config"].(map[string]any)
			drift := false
			for k, w := range wantConfig {
				if k != "clientSecret" && !same(haveConfig[k], w) {
					changes = append(changes, fmt.Sprintf("identity provider %s: %s %v -> %v", alias, k, haveConfig[k], w))
					drift = true
				}
			}
			for _, k := range []string{"enabled", "displayName", "trustEmail", "firstBrokerLoginFlowAlias"} {
				if !same(have[k], want[k]) {
					changes = append(changes, fmt.Sprintf("identity provider %s: %s %v -> %v", alias, k, have[k], want[k]))
					drift = true
				}
			}
			if drift {
				upd := map[string]any{"internalId": have["internalId"]}
				for k, v := range want {
					upd[k] = v
				}
				if _, err := c.do(ctx, "PUT", base+"/identity-provider/instances/"+url.PathEscape(alias), upd, nil); err != nil {
					return nil, fmt.Errorf("identity provider %s: %w", alias, err)
				}
			}
		}
		var mappers []map[string]any
		if _, err := c.do(ctx, "GET", base+"/identity-provider/instances/"+url.PathEscape(alias)+"/mappers", nil, &mappers); err != nil {
			return nil, err
		}
		for _, m := range anymap.List(rep["identityProviderMappers"]) {
			if m["identityProviderAlias"] != alias {
				continue
			}
			i := slices.IndexFunc(mappers, func(h map[string]any) bool { return h["name"] == m["name"] })
			switch {
			case i < 0:
				if _, err := c.do(ctx, "POST", base+"/identity-provider/instances/"+url.PathEscape(alias)+"/mappers", m, nil); err != nil {
					return nil, fmt.Errorf("identity provider %s mapper %v: %w", alias, m["name"], err)
				}
				changes = append(changes, fmt.Sprintf("identity provider %s: created mapper %v", alias, m["name"]))
			case !covers(mappers[i]["config"], m["config"]):
				upd := map[string]any{"id": mappers[i]["id"]}
				for k, v := range m {
					upd[k] = v
				}
				if _, err := c.do(ctx, "PUT", base+"/identity-provider/instances/"+url.PathEscape(alias)+"/mappers/"+fmt.Sprint(mappers[i]["id"]), upd, nil); err != nil {
					return nil, fmt.Errorf("identity provider %s mapper %v: %w", alias, m["name"], err)
				}
				changes = append(changes, fmt.Sprintf("identity provider %s: mapper %v restored", alias, m["name"]))
			}
		}
	}
	return changes, nil
}

const storageProvider = "org.keycloak.storage.UserStorageProvider"

func (c *Client) components(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	var realm map[string]any
	if _, err := c.do(ctx, "GET", base, nil, &realm); err != nil {
		return nil, err
	}
	realmID, _ := realm["id"].(string)
	var changes []string
	for _, want := range anymap.List(anymap.Get(rep, "components", storageProvider)) {
		name, _ := want["name"].(string)
		var found []map[string]any
		if _, err := c.do(ctx, "GET", base+"/components?type="+storageProvider+"&name="+url.QueryEscape(name), nil, &found); err != nil {
			return nil, err
		}
		body := map[string]any{"name": name, "providerId": want["providerId"], "providerType": storageProvider, "parentId": realmID, "config": want["config"]}
		if len(found) == 0 {
			if _, err := c.do(ctx, "POST", base+"/components", body, nil); err != nil {
				return nil, fmt.Errorf("user federation %s: %w", name, err)
			}
			changes = append(changes, "created user federation "+name)
			if _, err := c.do(ctx, "GET", base+"/components?type="+storageProvider+"&name="+url.QueryEscape(name), nil, &found); err != nil || len(found) == 0 {
				return nil, fmt.Errorf("user federation %s: created but not found: %v", name, err)
			}
		} else {
			have, _ := found[0]["config"].(map[string]any)
			wantConfig, _ := want["config"].(map[string]any)
			for k, w := range wantConfig {
				if k != "bindCredential" && !same(have[k], w) {
					changes = append(changes, fmt.Sprintf("user federation %s: %s %v -> %v", name, k, have[k], w))
				}
			}
			// Always put back (the bind password cannot be read back to compare).
			body["id"] = found[0]["id"]
			if _, err := c.do(ctx, "PUT", base+"/components/"+fmt.Sprint(found[0]["id"]), body, nil); err != nil {
				return nil, fmt.Errorf("user federation %s: %w", name, err)
			}
		}
		parent := fmt.Sprint(found[0]["id"])
		subComponents, _ := want["subComponents"].(map[string]any)
		for typ, subs := range subComponents {
			for _, sub := range anymap.List(subs) {
				var have []map[string]any
				if _, err := c.do(ctx, "GET", base+"/components?parent="+parent+"&type="+url.QueryEscape(typ)+"&name="+url.QueryEscape(fmt.Sprint(sub["name"])), nil, &have); err != nil {
					return nil, err
				}
				body := map[string]any{"name": sub["name"], "providerId": sub["providerId"], "providerType": typ, "parentId": parent, "config": sub["config"]}
				switch {
				case len(have) == 0:
					if _, err := c.do(ctx, "POST", base+"/components", body, nil); err != nil {
						return nil, fmt.Errorf("user federation %s mapper %v: %w", name, sub["name"], err)
					}
					changes = append(changes, fmt.Sprintf("user federation %s: created mapper %v", name, sub["name"]))
				case !covers(have[0]["config"], sub["config"]):
					body["id"] = have[0]["id"]
					if _, err := c.do(ctx, "PUT", base+"/components/"+fmt.Sprint(have[0]["id"]), body, nil); err != nil {
						return nil, fmt.Errorf("user federation %s mapper %v: %w", name, sub["name"], err)
					}
					changes = append(changes, fmt.Sprintf("user federation %s: mapper %v restored", name, sub["name"]))
				}
			}
		}
	}
	return changes, nil
}

// testLDAP checks that Keycloak can bind to each LDAP federation with its credentials before
// anything is changed: a wrong bind password fails here, named, instead of at users' logins.
func (c *Client) testLDAP(ctx context.Context, rep map[string]any) error {
	for _, l := range anymap.List(anymap.Get(rep, "components", storageProvider)) {
		cfg, _ := l["config"].(map[string]any)
		first := func(k string) string {
			v := anymap.Strings(cfg[k])
			if len(v) == 0 {
				return ""
			}
			return v[0]
		}
		body := map[string]any{"action": "testAuthentication", "connectionUrl": first("connectionUrl"), "bindDn": first("bindDn"),
			"bindCredential": first("bindCredential"), "authType": first("authType"), "useTruststoreSpi": "always", "startTls": "false"}
		if _, err := c.do(ctx, "POST", "/admin/realms/master/testLDAPConnection", body, nil); err != nil {
			return fmt.Errorf("LDAP federation %v: bind to %s as %s failed (check the URL and the bind password Secret): %w", l["name"], first("connectionUrl"), first("bindDn"), err)
		}
	}
	return nil
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

// do calls the admin API; out, when given, receives the JSON answer. Errors carry Keycloak's
// message but never the request body (it may hold the bind password).
func (c *Client) do(ctx context.Context, method, path string, body, out any) (int, error) {
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
