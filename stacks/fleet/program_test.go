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
		`{"environment":"prod","management":"/m","clusters":[{"name":"a","kubeconfig":"/a"},{"name":"a","kubeconfig":"/b"}]}`: `clusters[1]: the name "a" is used twice`,
		`{"environment":"prod","management":"/m","clusters":[{"name":"a"}]}`:                                                  `clusters[0] a: kubeconfig: required`,
		`{"environment":"prod","clusters":[]}`:                                                                                `management: the management cluster's kubeconfig`,
		`{"environment":"prod","management":"/m","clusters":[],"regions":[]}`:                                                 `unknown field "regions"`,
		`{"environment":"prod","management":"/m","clusters":[{"name":"a","kubeconfig":"/a","mode":"pull"}]}`:                  `clusters[0] a: mode pull: add platform`,
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
