package realmsync

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/kplane/kplane/internal/anymap"
)

// Where users come from: LDAP/AD federation and brokered identity providers.

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
