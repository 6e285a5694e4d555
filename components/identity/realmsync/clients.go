package realmsync

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/kplane/kplane/internal/anymap"
)

// Clients (the cluster login and the tools), their protocol mappers and client roles.

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
	"serviceAccountsEnabled", "redirectUris", "webOrigins", "protocol", "authenticationFlowBindingOverrides", "fullScopeAllowed"}

func (c *Client) clients(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	var changes []string
	var flowIDs map[string]string
	for _, want := range anymap.List(rep["clients"]) {
		clientID, _ := want["clientId"].(string)
		// Flow overrides name flows by alias in the representation, by id in Keycloak.
		if overrides, ok := want["authenticationFlowBindingOverrides"].(map[string]any); ok {
			if flowIDs == nil {
				var err error
				if flowIDs, err = c.flowIDs(ctx, base); err != nil {
					return nil, err
				}
			}
			byID := map[string]any{}
			for kind, alias := range overrides {
				id, ok := flowIDs[fmt.Sprint(alias)]
				if !ok {
					return nil, fmt.Errorf("client %s: %s flow %v does not exist", clientID, kind, alias)
				}
				byID[kind] = id
			}
			want = maps.Clone(want)
			want["authenticationFlowBindingOverrides"] = byID
		}
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
