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

// Realm roles and groups, with the groups' realm and client role mappings.

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
