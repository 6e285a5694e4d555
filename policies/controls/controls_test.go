package controls

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
	"github.com/kplane/kplane/policies"
	"github.com/kplane/kplane/policies/kubernetes"
)

func TestCatalogShape(t *testing.T) {
	c, err := Load()
	require.NoError(t, err)
	assert.Len(t, c.CIS, 131, "CIS 1.12 has 131 controls")
	seen := map[string]bool{}
	for _, x := range c.CIS {
		assert.False(t, seen[x.ID], "duplicate %s", x.ID)
		seen[x.ID] = true
		assert.Contains(t, []string{"automated", "manual"}, x.Assessment, x.ID)
	}
	masters, workers := 0, 0
	for _, k := range c.KISA {
		switch k.ID[:3] {
		case "Mas":
			masters++
		case "Wor":
			workers++
		}
		assert.NotEmpty(t, k.Ko, k.ID)
		for _, id := range k.CIS {
			assert.NoError(t, c.Resolve("CIS "+id), "KISA %s crosswalk", k.ID)
		}
	}
	assert.Equal(t, 17, masters)
	assert.Equal(t, 7, workers)
}

// TestEveryReferenceExists: every control that an admission policy, a pack policy or a node
// check names is in the catalog (a typo in a control id fails here).
func TestEveryReferenceExists(t *testing.T) {
	c, err := Load()
	require.NoError(t, err)
	args := &hardenedcluster.Args{Teams: []hardenedcluster.Team{{Name: "a", Namespaces: []string{"a"}}},
		Admission: hardenedcluster.AdmissionArgs{AllowedRegistries: []string{"r/"}}}
	for _, p := range args.CELPolicies() {
		for _, ref := range p.Controls {
			assert.NoError(t, c.Resolve(ref), "admission policy %s", p.Name)
		}
	}
	pack, err := kubernetes.WorkloadPolicies(args)
	require.NoError(t, err)
	full, err := policies.Pack()
	require.NoError(t, err)
	for _, p := range append(pack, full.Policies...) {
		for _, ref := range p.Controls {
			assert.NoError(t, c.Resolve(ref.String()), "pack policy %s", p.Name)
		}
	}
	for _, ch := range nodecheck.Checks() {
		if ch.ID != "KISA-W04" {
			assert.NoError(t, c.Resolve("CIS "+ch.ID), "node check %s", ch.ID)
		}
		for _, k := range ch.KISA {
			assert.NoError(t, c.Resolve("KISA "+k), "node check %s", ch.ID)
		}
	}
	for _, bad := range []string{"CIS 5.2.13", "KISA Master-18", "ISMS-P 9.9.9", "NIST AC-2", "CIS5.2.2"} {
		assert.Error(t, c.Resolve(bad), fmt.Sprint(bad))
	}
}
