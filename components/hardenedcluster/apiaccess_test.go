package hardenedcluster

import (
	"testing"

	"github.com/kplane/kplane/tests/testbed/pki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAPIAccessValidate(t *testing.T) {
	ca := string(pki.Certificate(t, "team-ca", nil, true, nil).PEM)
	caller := func(a *Args) {
		a.Teams = []Team{{Name: "ops", Namespaces: []string{"ops"}}}
		a.Services = []Service{{Name: "reporter", Namespace: "ops", AutomountToken: true}}
	}
	cases := map[string]struct {
		mutate func(*Args)
		want   string
	}{
		"empty": {func(a *Args) {}, ""},
		"valid": {func(a *Args) {
			a.APIAccess = APIAccessArgs{AllowedCIDRs: []string{"203.0.113.0/24"}, ClientCAs: ca + ca}
		}, ""},
		"not a CIDR":           {func(a *Args) { a.APIAccess.AllowedCIDRs = []string{"203.0.113.0"} }, `apiAccess.allowedCidrs[0] "203.0.113.0": not a CIDR`},
		"host bits":            {func(a *Args) { a.APIAccess.AllowedCIDRs = []string{"203.0.113.7/24"} }, "host bits set; did you mean 203.0.113.0/24?"},
		"open to everyone":     {func(a *Args) { a.APIAccess.AllowedCIDRs = []string{"0.0.0.0/0"} }, "opens the API endpoint to everyone (KISA Master-01)"},
		"bad endpoint":         {func(a *Args) { a.APIAccess.EndpointCIDRs = []string{"api.example.com"} }, `apiAccess.endpointCidrs[0] "api.example.com": not a CIDR`},
		"leaf, not a CA":       {func(a *Args) { a.APIAccess.ClientCAs = string(pki.Certificate(t, "leaf", nil, false, nil).PEM) }, "apiAccess.clientCAs: PEM block 0 is not a CA certificate"},
		"no PEM":               {func(a *Args) { a.APIAccess.ClientCAs = "MIIB..." }, "apiAccess.clientCAs: no PEM certificate found"},
		"caller isolated":      {caller, `services[0] "reporter": mounts a token, but namespace "ops" is isolated from the API server`},
		"caller with endpoint": {func(a *Args) { caller(a); a.APIAccess.EndpointCIDRs = []string{"10.96.0.1/32"} }, ""},
		"caller in open team":  {func(a *Args) { caller(a); a.Teams[0].OpenNetwork = true }, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := &Args{}
			tc.mutate(a)
			expectValidation(t, a, tc.want)
		})
	}
}

func TestAPIEgressOnlyForCallers(t *testing.T) {
	rec, err := run(t, &Args{
		Teams:     []Team{{Name: "ops", Namespaces: []string{"ops", "quiet"}}},
		Services:  []Service{{Name: "reporter", Namespace: "ops", AutomountToken: true}},
		APIAccess: APIAccessArgs{EndpointCIDRs: []string{"10.0.0.10/32"}},
	})
	require.NoError(t, err)
	egress := map[string]int{}
	for _, np := range rec.ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy") {
		egress[np.Inputs["metadata"].ObjectValue()["namespace"].StringValue()] = len(np.Inputs["spec"].ObjectValue()["egress"].ArrayValue())
	}
	assert.Equal(t, map[string]int{"ops": 3, "quiet": 2}, egress, "only the caller's namespace may reach the API endpoint")
}
