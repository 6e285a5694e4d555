package fleet

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/fleetmember"
)

// TestCopyRender: a copied render holds the same platform and policies with the member's own
// manifest, and SameRender tells a changed, missing or extra file apart.
func TestCopyRender(t *testing.T) {
	root := t.TempDir()
	from, to := fleetmember.RenderedDir(root, "prod", "seoul"), fleetmember.RenderedDir(root, "prod", "busan")
	staging := from + ".rendering"
	for rel, body := range map[string]string{"platform/v1-namespace-kplane.yaml": "kind: Namespace\n", "policies/vap.yaml": "kind: ValidatingAdmissionPolicy\n"} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(staging, rel)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(staging, rel), []byte(body), 0o644))
	}
	require.NoError(t, publish(staging, &fleetmember.Rendered{Environment: "prod", Cluster: "seoul", Objects: 2, Namespaces: []string{"kplane"}}, from))

	r := &fleetmember.Rendered{Environment: "prod", Cluster: "busan"}
	require.NoError(t, copyRender(from, r, to))
	assert.Equal(t, 2, r.Objects)
	assert.Equal(t, []string{"kplane"}, r.Namespaces)
	got, err := fleetmember.LoadRendered(root, "prod", "busan")
	require.NoError(t, err)
	assert.Equal(t, "busan", got.Cluster)
	assert.NoDirExists(t, to+".rendering")

	for _, dir := range []string{"platform", "policies"} {
		same, err := SameRender(filepath.Join(from, dir), filepath.Join(to, dir))
		require.NoError(t, err)
		assert.True(t, same, dir)
	}
	same, err := SameRender(from, to)
	require.NoError(t, err)
	assert.False(t, same, "the manifests name different members")

	require.NoError(t, os.WriteFile(filepath.Join(to, "policies", "vap.yaml"), []byte("kind: ValidatingAdmissionPolicy\n# edited\n"), 0o644))
	same, _ = SameRender(filepath.Join(from, "policies"), filepath.Join(to, "policies"))
	assert.False(t, same, "a hand edit")
	require.NoError(t, os.WriteFile(filepath.Join(to, "platform", "extra.yaml"), nil, 0o644))
	same, _ = SameRender(filepath.Join(from, "platform"), filepath.Join(to, "platform"))
	assert.False(t, same, "a file the render does not hold")
	same, err = SameRender(from, filepath.Join(root, "prod", "gone"))
	require.NoError(t, err)
	assert.False(t, same, "no committed render")
}
