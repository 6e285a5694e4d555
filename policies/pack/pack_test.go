package pack

import (
	"context"
	"errors"
	"testing"

	pbempty "google.golang.org/protobuf/types/known/emptypb"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfigureStack: the engine configures the stack first; from then on the analyzer reports
// and applies the stack's pack.
func TestConfigureStack(t *testing.T) {
	policy := func(name string) Policy {
		return Policy{Name: name, Description: name, Check: func(Resource) []string { return []string{name + " says no"} }}
	}
	base := &Pack{Name: "p", Version: "1", Policies: []Policy{policy("default-only")}}
	base.ForStack = func(config map[string]string) (*Pack, error) {
		if config["app:mode"] == "bad" {
			return nil, errors.New("config app:mode: no such mode")
		}
		return &Pack{Name: "p", Version: "1", Policies: []Policy{policy("for-" + config["app:mode"])}}, nil
	}
	ctx := context.Background()
	a := &analyzer{pack: base}
	_, err := a.ConfigureStack(ctx, &pulumirpc.AnalyzerStackConfigureRequest{Stack: "dev", Config: map[string]string{"app:mode": "bad"}})
	require.ErrorContains(t, err, "policy pack p: stack dev: config app:mode: no such mode")

	_, err = a.ConfigureStack(ctx, &pulumirpc.AnalyzerStackConfigureRequest{Stack: "dev", Config: map[string]string{"app:mode": "strict"}})
	require.NoError(t, err)
	info, err := a.GetAnalyzerInfo(ctx, &pbempty.Empty{})
	require.NoError(t, err)
	require.Len(t, info.GetPolicies(), 1)
	assert.Equal(t, "for-strict", info.GetPolicies()[0].GetName())
	resp, err := a.Analyze(ctx, &pulumirpc.AnalyzeRequest{Type: "t", Name: "n"})
	require.NoError(t, err)
	require.Len(t, resp.GetDiagnostics(), 1)
	assert.Contains(t, resp.GetDiagnostics()[0].GetMessage(), "for-strict says no")
}
