package fleetmember

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Rendered is what `kplane-fleet render` wrote for one member (RenderedDir): the composed
// platform, rendered by the Kubernetes provider from the environment file with the member's
// values laid over it, split in two folders that Argo CD syncs with different credentials:
// platform/ (everything but the admission policies) and policies/ (the admission policies, with
// the member's parameters: enforce or audit, registries, exceptions). Its manifest
// (RenderedManifest) lists the kinds of each, from which the member's credentials and the
// AppProjects' allow-lists are made: a kind the platform does not render is one Argo CD may not
// touch.
type Rendered struct {
	Environment string `json:"environment"`
	Cluster     string `json:"cluster"`
	// Inputs is the SHA-256 of the layered stack config the render came from.
	Inputs     string   `json:"inputs"`
	Objects    int      `json:"objects"`
	Namespaces []string `json:"namespaces"`
	Platform   []Kind   `json:"platform"`
	Policies   []Kind   `json:"policies"`
}

// Kind is a kind of object a render holds, with its resource name as RBAC knows it.
type Kind struct {
	Group      string `json:"group"`
	Version    string `json:"version"`
	Kind       string `json:"kind"`
	Resource   string `json:"resource"`
	Namespaced bool   `json:"namespaced"`
}

// The rendered folders and the manifest's name.
const (
	RenderedPlatform = "platform"
	RenderedPolicies = "policies"
	RenderedManifest = "kplane-render.json"
	// DefaultRenderedPath is where renders go in the platform's repository (and its checkout).
	DefaultRenderedPath = "rendered"
)

// RenderedDir is the member's folder under root: <root>/<environment>/<cluster>.
func RenderedDir(root, env, cluster string) string { return filepath.Join(root, env, cluster) }

// PolicyKind says whether objects of group/kind are admission policies: they go to policies/,
// synced with the policy deployer's credentials only.
func PolicyKind(group, kind string) bool {
	switch group {
	case "admissionregistration.k8s.io":
		return kind == "ValidatingAdmissionPolicy" || kind == "ValidatingAdmissionPolicyBinding"
	case "templates.gatekeeper.sh", "constraints.gatekeeper.sh":
		return true
	case "policy.sigstore.dev":
		return kind == "ClusterImagePolicy"
	}
	return false
}

// LoadRendered reads a member's manifest; a member never rendered is an error with the fix.
func LoadRendered(root, env, cluster string) (*Rendered, error) {
	path := filepath.Join(RenderedDir(root, env, cluster), RenderedManifest)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster %s: %s is missing: run `kplane-fleet render --env %s` and commit the result", cluster, path, env)
	}
	if err != nil {
		return nil, err
	}
	var r Rendered
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Environment != env || r.Cluster != cluster {
		return nil, fmt.Errorf("%s: rendered for %s/%s, not %s/%s", path, r.Environment, r.Cluster, env, cluster)
	}
	return &r, nil
}

// rules are RBAC rules over kinds, grouped by API group (resources sorted), with verbs.
func rules(kinds []Kind, verbs ...string) []Rule {
	byGroup := map[string][]string{}
	for _, k := range kinds {
		if !slices.Contains(byGroup[k.Group], k.Resource) {
			byGroup[k.Group] = append(byGroup[k.Group], k.Resource)
		}
	}
	var out []Rule
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		res := byGroup[g]
		slices.Sort(res)
		out = append(out, Rule{Groups: []string{g}, Resources: res, Verbs: verbs})
	}
	return out
}

// Rule is one RBAC rule.
type Rule struct{ Groups, Resources, Verbs []string }

// groupKinds are an AppProject's allow-list entries for the kinds (namespaced or not).
func groupKinds(kinds []Kind, namespaced bool) []any {
	seen := map[string]bool{}
	var out []any
	for _, k := range kinds {
		key := k.Group + "/" + k.Kind
		if k.Namespaced != namespaced || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, map[string]any{"group": k.Group, "kind": k.Kind})
	}
	slices.SortFunc(out, func(a, b any) int {
		x, y := a.(map[string]any), b.(map[string]any)
		return strings.Compare(x["group"].(string)+"/"+x["kind"].(string), y["group"].(string)+"/"+y["kind"].(string))
	})
	return out
}
