package addon

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var official = Chart{Repo: "https://charts.example.org", Name: "thing", Version: "1.2.3"}

func TestOrKeepsThePinnedOfficialChart(t *testing.T) {
	assert.Equal(t, official, Chart{}.Or(official))
	mirror := Chart{Repo: "oci://mirror.example.com/charts"}.Or(official)
	assert.Equal(t, Chart{Repo: "oci://mirror.example.com/charts", Name: "thing", Version: "1.2.3"}, mirror)
	local := Chart{Path: t.TempDir()}.Or(official)
	assert.Empty(t, local.Repo, "a local chart does not use the repository")
	assert.Equal(t, "1.2.3", local.Version)
}

func TestValidate(t *testing.T) {
	require.NoError(t, official.Validate())
	require.NoError(t, Chart{Path: t.TempDir()}.Validate())
	for _, c := range []struct {
		src  Chart
		want string
	}{
		{Chart{Path: "/no/such/chart"}, `path "/no/such/chart": no such chart directory`},
		{Chart{Repo: "charts.example.org", Name: "thing", Version: "1"}, `repo "charts.example.org": give a chart repository URL`},
		{Chart{Repo: "https://charts.example.org", Version: "1"}, `name "": give the chart's name`},
		{Chart{Repo: "https://charts.example.org", Name: "thing"}, "version: required; pin the chart version"},
	} {
		err := c.src.Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), c.want)
	}
}

func TestArgs(t *testing.T) {
	oci := Chart{Repo: "oci://mirror.example.com/charts/", Name: "thing", Version: "1.2.3"}.Args("r", "ns", nil)
	assert.Nil(t, oci.RepositoryOpts, "an OCI chart is addressed by its reference")
	https := official.Args("r", "ns", nil)
	assert.NotNil(t, https.RepositoryOpts)
}

func TestMerge(t *testing.T) {
	base := map[string]any{"a": 1, "audit": map[string]any{"interval": 60, "limit": 20}}
	got := Merge(base, map[string]any{"audit": map[string]any{"interval": 30}, "b": true})
	assert.Equal(t, map[string]any{"a": 1, "b": true, "audit": map[string]any{"interval": 30, "limit": 20}}, got)
	assert.Equal(t, 60, base["audit"].(map[string]any)["interval"], "base is not modified")
}
