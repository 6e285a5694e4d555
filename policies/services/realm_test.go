package services

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/policies/pack"
)

// TestIdentityRealmPasses: the realm the identity component generates passes every identity policy.
func TestIdentityRealmPasses(t *testing.T) {
	rep := identity.Representation(identity.Args{KeycloakURL: "https://sso.example.com"})
	raw, err := json.Marshal(rep)
	require.NoError(t, err)
	r := pack.Resource{Type: "kubernetes:core/v1:ConfigMap", Name: "realm", Props: map[string]any{
		"metadata": map[string]any{"name": "kplane-realm-kplane", "labels": map[string]any{wellknown.RealmLabel: "kplane"}},
		"data":     map[string]any{"realm.json": string(raw)}}}
	p := &pack.Pack{Name: "t", Version: "0", Policies: IdentityPolicies()}
	assert.Empty(t, p.Evaluate(r, nil))
}
