package platform

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/images"
	"github.com/kplane/kplane/components/mesh"
	composed "github.com/kplane/kplane/components/platform"
	"github.com/kplane/kplane/internal/automation"
)

// environment is an environment file's config values, with the specs folder as seen from here.
func environment(t *testing.T, env string) map[string]string {
	cfg, err := automation.LoadEnvironment("../../environments", env, "platform")
	require.NoError(t, err)
	out := map[string]string{}
	for k, v := range cfg {
		out[k] = v.Value
	}
	if raw := out["kplane:gateway"]; raw != "" {
		var g map[string]any
		require.NoError(t, json.Unmarshal([]byte(raw), &g))
		g["specsDir"] = "../../" + g["specsDir"].(string)
		b, _ := json.Marshal(g)
		out["kplane:gateway"] = string(b)
	}
	return out
}

func TestEveryEnvironmentComposesTheWholePlatform(t *testing.T) {
	for _, env := range []string{"dev", "staging", "prod"} {
		t.Run(env, func(t *testing.T) {
			c, p, err := FromConfig(environment(t, env))
			require.NoError(t, err)
			for _, capability := range []bool{c.Platform.Identity != nil, c.Platform.Backup != nil, c.Platform.Mesh != nil, c.Platform.Gateway != nil} {
				assert.True(t, capability, "every capability is in every environment")
			}
			// hardened cluster -> mesh and backup: every team namespace, unless opted out by name.
			meshed := map[string]bool{}
			for _, team := range p.Mesh.Teams {
				meshed[team.Namespace] = true
			}
			teamSchedule := p.Backup.Velero.Schedules[slices.IndexFunc(p.Backup.Velero.Schedules, func(s backup.Schedule) bool { return s.Name == composed.TeamSchedule })]
			for ns := range p.TeamNamespaces {
				_, out := p.OptedOut["mesh"][ns]
				assert.Equal(t, !out, meshed[ns], "%s in the mesh", ns)
				_, out = p.OptedOut["backup"][ns]
				assert.Equal(t, !out, slices.Contains(teamSchedule.Namespaces, ns), "%s backed up", ns)
			}
			// backup -> restore drill: the environment's objectives are on its schedules.
			assert.NotEmpty(t, teamSchedule.RPO, "the team schedule has an RPO")
			assert.NotEmpty(t, teamSchedule.RTO, "the team schedule has an RTO")
			// identity -> gateway: the realm's issuer, and every consumer a client of the realm.
			assert.Equal(t, strings.TrimSuffix(c.Platform.Identity.KeycloakURL, "/")+"/realms/kplane", p.Gateway.Tokens.Issuer)
			for _, cons := range p.Gateway.Consumers {
				assert.True(t, slices.ContainsFunc(p.Identity.APIClients, func(a identity.APIClient) bool { return a.ClientID == cons.ClientID }), cons.ClientID)
			}
			if cat := p.Gateway.Catalog; cat != nil {
				assert.True(t, slices.ContainsFunc(p.Identity.Tools, func(tool identity.Tool) bool {
					return tool.Name == "api-catalog" && tool.RedirectURIs[0] == "https://"+cat.Host+"/callback"
				}), "the catalog logs in through the realm")
			}
			// mesh <-> gateway: each published upstream admits the gateway, and nothing else does.
			for _, api := range p.Gateway.APIs {
				for _, v := range api.Versions {
					if !meshed[v.Upstream.Namespace] {
						continue
					}
					assert.Contains(t, callers(p.Mesh, v.Upstream.Namespace, v.Upstream.Service), "gateway/"+p.Gateway.Istio.Name)
				}
			}
			// hardened cluster <-> the rest: exemptions each with a reason, the platform's
			// namespaces held to the baseline otherwise.
			for _, e := range p.Security.Exemptions() {
				assert.NotEmpty(t, e.Reason, e.Namespace)
			}
			assert.NotContains(t, names(p.Security.Exemptions()), "istio-system", "istiod meets the baseline: not exempt")
			// kplane's own images: the digests `make images` builds, from the environment's registry.
			assert.Equal(t, images.Ref(c.Platform.Images, "kplane-catalog"), p.Gateway.Catalog.Image)
			assert.Contains(t, p.Gateway.Catalog.Image, images.Digests["kplane-catalog"])
			assert.Contains(t, names(p.Security.Exemptions()), "istio-ingress")
		})
	}
}

func callers(m *mesh.Args, ns, service string) []string {
	for _, t := range m.Teams {
		for _, s := range t.Services {
			if t.Namespace == ns && s.Name == service {
				return s.Callers
			}
		}
	}
	return nil
}

func names(list []hardenedcluster.Exemption) []string {
	var out []string
	for _, e := range list {
		out = append(out, e.Namespace)
	}
	return out
}

// TestBadEnvironmentFiles: one mistake per capability, each refused at the path typed with its
// fix, all of them at once.
func TestBadEnvironmentFiles(t *testing.T) {
	for _, tc := range []struct {
		name, key, patch string
		want             []string
	}{
		{"wrong type", "kplane:backup", `{"teams":{"ttl":30}}`,
			[]string{`kplane:backup.teams.ttl "30": expected a string, found a number (docs/components/backup.md)`}},
		{"unknown key", "kplane:mesh", `{"optout":[]}`,
			[]string{`kplane:mesh.optout: unknown key; known keys: `}},
		{"unknown team in the identity realm", "kplane:identity", `{"teams":[{"name":"ghosts","namespaces":["ghosts"]}]}`,
			[]string{`kplane:identity.teams[0].namespaces[0] "ghosts": not a team namespace; known team namespaces: kplane-system, payments, web (the hardened cluster's teams)`}},
		{"gateway product of an unknown team", "kplane:gateway", `{"apis":[{"owners":["treasury"]}]}`,
			[]string{`kplane:gateway.apis[0].owners[0] "treasury": no such team; known teams: payments, platform, web (the hardened cluster's teams)`}},
		{"backup of a namespace no team owns", "kplane:backup", `{"schedules":[{"name":"extra","cron":"0 3 * * *","ttl":"24h","namespaces":["scratch"]}]}`,
			[]string{`kplane:backup.schedules[0].namespaces[0] "scratch": no team owns it and no platform component runs there; known team namespaces: kplane-system, payments, web`}},
		{"opt-out without a reason", "kplane:backup", `{"optOut":[{"namespace":"web"}]}`,
			[]string{`kplane:backup.optOut[0].reason: required; why this namespace is left out`}},
		{"bad ttl", "kplane:backup", `{"teams":{"ttl":"a month"}}`,
			[]string{`kplane:backup.teams.ttl "a month": how long backups are kept, e.g. 720h (required)`}},
		{"an RPO the schedule cannot meet", "kplane:backup", `{"platform":{"rpo":"6h","rto":"soon"}}`,
			[]string{`kplane:backup.platform.rpo "6h": the cron "30 1 * * *" runs as far as 24h0m0s apart, so it can never meet this RPO`,
				`kplane:backup.platform.rto "soon": a positive duration, e.g. 25h or 30m`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := environment(t, "dev")
			cfg[tc.key] = merge(t, cfg[tc.key], tc.patch)
			_, _, err := FromConfig(cfg)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	// Several capabilities wrong at once: every error in one run.
	cfg := environment(t, "dev")
	cfg["kplane:backup"] = merge(t, cfg["kplane:backup"], `{"optOut":[{"namespace":"nope","reason":"x"}]}`)
	cfg["kplane:mesh"] = merge(t, cfg["kplane:mesh"], `{"optOut":[{"namespace":"web","reason":" "}]}`)
	_, _, err := FromConfig(cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `kplane:backup.optOut[0].namespace "nope": not a team namespace`)
	assert.Contains(t, err.Error(), `kplane:mesh.optOut[0].reason: required`)
}

// merge lays patch (JSON) over the value raw (JSON): objects merged key by key, lists' first
// elements merged with the patch's.
func merge(t *testing.T, raw, patch string) string {
	var base, over any
	require.NoError(t, json.Unmarshal([]byte(raw), &base))
	require.NoError(t, json.Unmarshal([]byte(patch), &over))
	b, err := json.Marshal(mergeValue(base, over))
	require.NoError(t, err)
	return string(b)
}

func mergeValue(base, over any) any {
	switch o := over.(type) {
	case map[string]any:
		b, ok := base.(map[string]any)
		if !ok {
			return o
		}
		for k, v := range o {
			b[k] = mergeValue(b[k], v)
		}
		return b
	case []any:
		b, ok := base.([]any)
		if !ok || len(o) == 0 || len(b) == 0 {
			return o
		}
		b[0] = mergeValue(b[0], o[0])
		return b
	}
	return over
}

func TestSecurityForThePackHasThePlatformsNamespaces(t *testing.T) {
	args, err := SecurityFor(environment(t, "dev"))
	require.NoError(t, err)
	var platform []string
	for _, ns := range args.Admission.PlatformNamespaces {
		platform = append(platform, ns.Name)
	}
	assert.Subset(t, platform, []string{"istio-system", "istio-ingress", "kplane-gateway", "velero", "kplane-identity"})
	assert.True(t, strings.Contains(strings.Join(names(args.Exemptions()), ","), "istio-ingress"))
}
