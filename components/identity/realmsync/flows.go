package realmsync

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	"github.com/kplane/kplane/internal/anymap"
)

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
