package realmsync

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/kplane/kplane/internal/anymap"
)

// Removing what the realm does not declare: clients, identity providers, flows, groups, and
// role mappings of groups and users (realm-management's administrator roles above all), added
// by hand in the console. Keycloak's built-ins stay.

// builtInClients are the clients Keycloak makes in every realm.
var builtInClients = []string{"account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"}

// prune removes, or with ReportOnly only reports, what rep does not declare.
func (c *Client) prune(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	var changes []string
	remove := func(what, path string) error {
		if !c.ReportOnly {
			if _, err := c.do(ctx, "DELETE", base+path, nil, nil); err != nil {
				return fmt.Errorf("removing %s: %w", what, err)
			}
		}
		changes = append(changes, c.removal(what))
		return nil
	}
	declared := func(list any, key string) []string {
		var out []string
		for _, x := range anymap.List(list) {
			out = append(out, fmt.Sprint(x[key]))
		}
		return out
	}

	var clients []map[string]any
	if _, err := c.do(ctx, "GET", base+"/clients", nil, &clients); err != nil {
		return nil, err
	}
	keepClients := append(declared(rep["clients"], "clientId"), builtInClients...)
	for _, cl := range clients {
		if id := fmt.Sprint(cl["clientId"]); !slices.Contains(keepClients, id) {
			if err := remove("client "+id, "/clients/"+fmt.Sprint(cl["id"])); err != nil {
				return changes, err
			}
		}
	}

	var idps []map[string]any
	if _, err := c.do(ctx, "GET", base+"/identity-provider/instances", nil, &idps); err != nil {
		return nil, err
	}
	keepIdPs := declared(rep["identityProviders"], "alias")
	for _, idp := range idps {
		if alias := fmt.Sprint(idp["alias"]); !slices.Contains(keepIdPs, alias) {
			if err := remove("identity provider "+alias, "/identity-provider/instances/"+url.PathEscape(alias)); err != nil {
				return changes, err
			}
		}
	}

	var flows []map[string]any
	if _, err := c.do(ctx, "GET", base+"/authentication/flows", nil, &flows); err != nil {
		return nil, err
	}
	keepFlows := declared(rep["authenticationFlows"], "alias")
	for _, f := range flows {
		if alias := fmt.Sprint(f["alias"]); f["builtIn"] != true && f["topLevel"] == true && !slices.Contains(keepFlows, alias) {
			if err := remove("flow "+alias, "/authentication/flows/"+fmt.Sprint(f["id"])); err != nil {
				return changes, err
			}
		}
	}

	var groups []map[string]any
	if _, err := c.do(ctx, "GET", base+"/groups?briefRepresentation=true&max=10000", nil, &groups); err != nil {
		return nil, err
	}
	wantGroups := map[string]map[string]any{}
	for _, g := range anymap.List(rep["groups"]) {
		wantGroups[fmt.Sprint(g["name"])] = g
	}
	for _, g := range groups {
		name, id := fmt.Sprint(g["name"]), fmt.Sprint(g["id"])
		want, ok := wantGroups[name]
		if !ok {
			if err := remove("group "+name, "/groups/"+id); err != nil {
				return changes, err
			}
			continue
		}
		more, err := c.pruneMappings(ctx, base, "group "+name, "/groups/"+id, anymap.Strings(want["realmRoles"]), clientRolesOf(want))
		if err != nil {
			return changes, err
		}
		changes = append(changes, more...)
	}

	// Users: people get roles through their groups; direct grants beyond the realm's default
	// roles (and what a declared user states) are removed. Clients' service-account users go with
	// their clients.
	wantUsers := map[string]map[string]any{}
	for _, u := range anymap.List(rep["users"]) {
		wantUsers[fmt.Sprint(u["username"])] = u
	}
	defaultRoles := "default-roles-" + strings.ToLower(fmt.Sprint(rep["realm"]))
	for first := 0; ; first += 500 {
		var users []map[string]any
		if _, err := c.do(ctx, "GET", fmt.Sprintf("%s/users?briefRepresentation=true&first=%d&max=500", base, first), nil, &users); err != nil {
			return nil, err
		}
		for _, u := range users {
			name := fmt.Sprint(u["username"])
			if strings.HasPrefix(name, "service-account-") {
				continue
			}
			want := wantUsers[name]
			more, err := c.pruneMappings(ctx, base, "user "+name, "/users/"+fmt.Sprint(u["id"]), append(anymap.Strings(want["realmRoles"]), defaultRoles),
				clientRolesOf(want))
			if err != nil {
				return changes, err
			}
			changes = append(changes, more...)
		}
		if len(users) < 500 {
			break
		}
	}
	return changes, nil
}

func clientRolesOf(x map[string]any) map[string][]string {
	out := map[string][]string{}
	cr, _ := x["clientRoles"].(map[string]any)
	for client, roles := range cr {
		out[client] = anymap.Strings(roles)
	}
	return out
}

// pruneMappings removes the realm and client role mappings of a group or user (at path) that
// are not in realm and clients.
func (c *Client) pruneMappings(ctx context.Context, base, who, path string, realm []string, clients map[string][]string) ([]string, error) {
	var mappings struct {
		Realm   []map[string]any `json:"realmMappings"`
		Clients map[string]struct {
			ID       string           `json:"id"`
			Mappings []map[string]any `json:"mappings"`
		} `json:"clientMappings"`
	}
	if _, err := c.do(ctx, "GET", base+path+"/role-mappings", nil, &mappings); err != nil {
		return nil, err
	}
	var changes []string
	var extra []any
	for _, r := range mappings.Realm {
		if !slices.Contains(realm, fmt.Sprint(r["name"])) {
			extra = append(extra, r)
			changes = append(changes, fmt.Sprintf("%s: role %v", who, r["name"]))
		}
	}
	if len(extra) > 0 && !c.ReportOnly {
		if _, err := c.do(ctx, "DELETE", base+path+"/role-mappings/realm", extra, nil); err != nil {
			return nil, fmt.Errorf("%s: removing realm roles: %w", who, err)
		}
	}
	for client, m := range mappings.Clients {
		var extra []any
		for _, r := range m.Mappings {
			if !slices.Contains(clients[client], fmt.Sprint(r["name"])) {
				extra = append(extra, r)
				changes = append(changes, fmt.Sprintf("%s: %s role %v", who, client, r["name"]))
			}
		}
		if len(extra) > 0 && !c.ReportOnly {
			if _, err := c.do(ctx, "DELETE", base+path+"/role-mappings/clients/"+m.ID, extra, nil); err != nil {
				return nil, fmt.Errorf("%s: removing %s roles: %w", who, client, err)
			}
		}
	}
	for i := range changes {
		changes[i] = c.removal(changes[i])
	}
	return changes, nil
}

// removal is the line that reports removing what (or, report only, that it would).
func (c *Client) removal(what string) string {
	if c.ReportOnly {
		return "would remove " + what + " (not declared; report only)"
	}
	return "removed " + what + " (not declared)"
}
