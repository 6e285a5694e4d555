package fleet

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/internal/anymap"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/stacks/platform"
)

func TestParse(t *testing.T) {
	c, err := Parse(`{"environment":"prod","management":"/m","clusters":[{"name":"a","kubeconfig":"/a"},{"name":"b","kubeconfig":"/b","labels":{"region":"kr"}}]}`)
	require.NoError(t, err)
	assert.Len(t, c.Members(), 2)
	for raw, want := range map[string]string{
		`{"environment":"prod","management":"/m","clusters":[{"name":"a","kubeconfig":"/a"},{"name":"a","kubeconfig":"/b"}]}`: `kplane:fleet.clusters[1].name "a": used twice`,
		`{"environment":"prod","management":"/m","clusters":[{"name":"a"}]}`:                                                  `kplane:fleet.clusters[0].kubeconfig: required`,
		`{"environment":"prod","clusters":[]}`:                                                                                `kplane:fleet.management: required; the management cluster's kubeconfig`,
		`{"environment":"prod","management":"/m","clusters":[],"regions":[]}`:                                                 `unknown field "regions"`,
		`{"environment":"prod","management":"/m","clusters":[{"name":"a","kubeconfig":"/a","mode":"pull"}]}`:                  `kplane:fleet.platform: required; with a member in mode pull`,
	} {
		_, err := Parse(raw)
		assert.ErrorContains(t, err, want)
	}
}

// TestProdExample: the example environment parses.
func TestProdExample(t *testing.T) {
	cfg, err := automation.LoadEnvironment("../../environments", "prod", "fleet")
	require.NoError(t, err)
	c, err := Parse(cfg["kplane:fleet"].Value)
	require.NoError(t, err)
	assert.Len(t, c.Clusters, 4)
	assert.True(t, c.Members()[3].Pull, "jeju-edge is a pull member")
	require.NoError(t, c.Platform.Validate())
}

// TestMemberConfig: a member's values lie over its environment's file key by key, as JSON merge
// patches; the rest of the environment is untouched, and what the member's render comes from is
// the composed platform of that config.
func TestMemberConfig(t *testing.T) {
	t.Chdir("../..") // the environments' relative paths (specsDir) are the repository's
	cfg, err := automation.LoadEnvironment("environments", "prod", "fleet")
	require.NoError(t, err)
	c, err := Parse(cfg["kplane:fleet"].Value)
	require.NoError(t, err)
	prod, err := automation.LoadEnvironment("environments", "prod", "platform")
	require.NoError(t, err)
	jeju, err := MemberConfig("environments", "prod", c.Clusters[3])
	require.NoError(t, err)
	var security, mesh map[string]any
	require.NoError(t, json.Unmarshal([]byte(jeju["kplane:security"].Value), &security))
	require.NoError(t, json.Unmarshal([]byte(jeju["kplane:mesh"].Value), &mesh))
	assert.Equal(t, "audit", anymap.Get(security, "admission", "mode"))
	assert.NotNil(t, anymap.Get(security, "admission", "allowedRegistries"), "the rest of prod's admission stays")
	assert.NotContains(t, mesh, "observability", "null removes")
	assert.NotEmpty(t, mesh["revisions"])
	for _, key := range []string{"kplane:identity", "kplane:gateway", "kplane:backup", "kplane:images"} {
		assert.Equal(t, prod[key], jeju[key], key)
	}
	seoul, err := MemberConfig("environments", "prod", c.Clusters[0])
	require.NoError(t, err)
	assert.Equal(t, prod, seoul, "no values: prod's file as it is")
	assert.NotEqual(t, inputsHash(seoul), inputsHash(jeju))

	flat := map[string]string{}
	for k, v := range jeju {
		flat[k] = v.Value
	}
	_, composed, err := platform.FromConfig(flat)
	require.NoError(t, err, "the member's layered config composes")
	assert.Equal(t, hardenedcluster.ModeAudit, composed.Security.Admission.Mode)

	_, err = Parse(`{"environment":"prod","management":"/m","clusters":[{"name":"a","kubeconfig":"/a","values":{"replicas":3}}]}`)
	assert.ErrorContains(t, err, `kplane:fleet.clusters[0].values[replicas]: not a capability of the platform (one of security, identity, mesh, gateway, backup, images)`)
}
