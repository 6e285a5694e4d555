package fleet

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/internal/automation"
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
