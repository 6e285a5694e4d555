package realmsync

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/kplane/kplane/internal/anymap"
)

// flows keeps the realm's own authentication flows as declared: a missing flow (new in the
// representation, or deleted by hand) is created, a missing step is created at its priority with
// its configuration, and every step's requirement is put back (an OTP step switched off by hand
// is switched back on).
func (c *Client) flows(ctx context.Context, base string, rep map[string]any) ([]string, error) {
	flows := map[string]map[string]any{}
	for _, f := range anymap.List(rep["authenticationFlows"]) {
		flows[fmt.Sprint(f["alias"])] = f
	}
	configs := map[string]map[string]any{}
	for _, cfg := range anymap.List(rep["authenticatorConfig"]) {
		configs[fmt.Sprint(cfg["alias"])] = cfg
	}
	var changes []string
	var walk func(flow string) error
	walk = func(flow string) error {
		path := base + "/authentication/flows/" + url.PathEscape(flow) + "/executions"
		var have []map[string]any
		if _, err := c.do(ctx, "GET", path, nil, &have); err != nil {
			return fmt.Errorf("authentication flow %s: %w", flow, err)
		}
		for _, e := range anymap.List(flows[flow]["authenticationExecutions"]) {
			sub, _ := e["flowAlias"].(string)
			what := fmt.Sprint(e["authenticator"])
			if sub != "" {
				what = sub
			}
			// The flow's own steps are those of level 0 (subflows' steps follow them, deeper).
			find := func() int {
				return slices.IndexFunc(have, func(h map[string]any) bool {
					if fmt.Sprint(h["level"]) != "0" {
						return false
					}
					if sub != "" {
						return h["authenticationFlow"] == true && h["displayName"] == sub
					}
					return h["providerId"] == e["authenticator"]
				})
			}
			i := find()
			if i < 0 {
				body := map[string]any{"provider": e["authenticator"], "priority": e["priority"]}
				kind := "execution"
				if sub != "" {
					body = map[string]any{"alias": sub, "type": "basic-flow", "provider": "registration-page-form", "description": sub, "priority": e["priority"]}
					kind = "flow"
				}
				if _, err := c.do(ctx, "POST", path+"/"+kind, body, nil); err != nil {
					return fmt.Errorf("authentication flow %s: creating step %s: %w", flow, what, err)
				}
				changes = append(changes, fmt.Sprintf("authentication flow %s: created step %s", flow, what))
				if _, err := c.do(ctx, "GET", path, nil, &have); err != nil {
					return err
				}
				if i = find(); i < 0 {
					return fmt.Errorf("authentication flow %s: step %s created but not listed", flow, what)
				}
			}
			if want := fmt.Sprint(e["requirement"]); have[i]["requirement"] != want {
				upd := map[string]any{}
				for k, v := range have[i] {
					upd[k] = v
				}
				upd["requirement"] = want
				if _, err := c.do(ctx, "PUT", path, upd, nil); err != nil {
					return fmt.Errorf("authentication flow %s step %s: %w", flow, what, err)
				}
				changes = append(changes, fmt.Sprintf("authentication flow %s: %s %v -> %s", flow, what, have[i]["requirement"], want))
			}
			if alias, _ := e["authenticatorConfig"].(string); alias != "" && have[i]["authenticationConfig"] == nil {
				if _, err := c.do(ctx, "POST", base+"/authentication/executions/"+fmt.Sprint(have[i]["id"])+"/config", configs[alias], nil); err != nil {
					return fmt.Errorf("authentication flow %s step %s: configuration %s: %w", flow, what, alias, err)
				}
				changes = append(changes, fmt.Sprintf("authentication flow %s: %s configured (%s)", flow, what, alias))
			}
			if sub != "" {
				if err := walk(sub); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, top := range anymap.List(rep["authenticationFlows"]) {
		if top["topLevel"] != true {
			continue
		}
		alias := fmt.Sprint(top["alias"])
		status, err := c.do(ctx, "GET", base+"/authentication/flows/"+url.PathEscape(alias)+"/executions", nil, nil)
		if status == http.StatusNotFound {
			if _, err := c.do(ctx, "POST", base+"/authentication/flows", map[string]any{"alias": alias, "description": alias,
				"providerId": "basic-flow", "topLevel": true, "builtIn": false}, nil); err != nil {
				return nil, fmt.Errorf("authentication flow %s: %w", alias, err)
			}
			changes = append(changes, "created authentication flow "+alias)
		} else if err != nil {
			return nil, err
		}
		if err := walk(alias); err != nil {
			return nil, err
		}
	}
	return changes, nil
}

// flowIDs maps the realm's flow aliases to their ids (clients bind flows by id).
func (c *Client) flowIDs(ctx context.Context, base string) (map[string]string, error) {
	var list []map[string]any
	if _, err := c.do(ctx, "GET", base+"/authentication/flows", nil, &list); err != nil {
		return nil, err
	}
	ids := map[string]string{}
	for _, f := range list {
		ids[fmt.Sprint(f["alias"])] = fmt.Sprint(f["id"])
	}
	return ids, nil
}
