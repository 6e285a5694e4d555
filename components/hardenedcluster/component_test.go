package hardenedcluster

import (
	"sync"
	"testing"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a Pulumi mock that records every registered resource.
type recorder struct {
	mu        sync.Mutex
	resources []pulumi.MockResourceArgs
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resources = append(r.resources, args)
	return args.Name + "-id", args.Inputs, nil
}

func (r *recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

func (r *recorder) ofType(typ string) []pulumi.MockResourceArgs {
	var out []pulumi.MockResourceArgs
	for _, res := range r.resources {
		if res.TypeToken == typ {
			out = append(out, res)
		}
	}
	return out
}

func run(t *testing.T, args *Args) (*recorder, error) {
	t.Helper()
	rec := &recorder{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := NewHardenedCluster(ctx, "test", args)
		return err
	}, pulumi.WithMocks("kplane", "unit", rec))
	return rec, err
}

func TestGraph(t *testing.T) {
	rec, err := run(t, &Args{
		PodSecurityVersion: "v1.37",
		Teams: []Team{
			{Name: "payments", Namespaces: []string{"payments", "payments-batch"}},
			{Name: "legacy", Namespaces: []string{"legacy"}, PodSecurity: "baseline"},
		},
		Services: []Service{
			{Name: "ledger", Namespace: "payments", Rules: []Rule{{Resources: []string{"configmaps"}, Verbs: []string{"get", "watch"}}}},
			{Name: "auditor", Namespace: "legacy", ClusterRules: []Rule{{Resources: []string{"namespaces"}, Verbs: []string{"list"}}}},
			{Name: "static-site", Namespace: "payments-batch"},
		},
	})
	require.NoError(t, err)

	ns := rec.ofType("kubernetes:core/v1:Namespace")
	require.Len(t, ns, 3)
	for _, n := range ns {
		labels := n.Inputs["metadata"].ObjectValue()["labels"].ObjectValue()
		assert.Equal(t, "v1.37", labels["pod-security.kubernetes.io/enforce-version"].StringValue())
	}

	nps := rec.ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy")
	require.Len(t, nps, 3, "every team namespace is isolated by default (CIS 5.3.2)")
	spec := nps[0].Inputs["spec"].ObjectValue()
	assert.Len(t, spec["policyTypes"].ArrayValue(), 2)
	assert.Len(t, spec["egress"].ArrayValue(), 2, "same namespace and DNS only")

	open, err := run(t, &Args{Teams: []Team{{Name: "lab", Namespaces: []string{"lab"}, OpenNetwork: true}}})
	require.NoError(t, err)
	assert.Empty(t, open.ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy"), "OpenNetwork skips the isolation")

	sas := rec.ofType("kubernetes:core/v1:ServiceAccount")
	require.Len(t, sas, 3)
	for _, sa := range sas {
		assert.False(t, sa.Inputs["automountServiceAccountToken"].BoolValue(), "%s: token mounted by default", sa.Name)
	}

	roles := rec.ofType("kubernetes:rbac.authorization.k8s.io/v1:Role")
	require.Len(t, roles, 1, "only services with Rules get a Role")
	rule := roles[0].Inputs["rules"].ArrayValue()[0].ObjectValue()
	assert.Equal(t, []resource.PropertyValue{resource.NewStringProperty("")}, rule["apiGroups"].ArrayValue(), "core group by default")
	assert.Equal(t, "payments", roles[0].Inputs["metadata"].ObjectValue()["namespace"].StringValue())
	assert.Len(t, rec.ofType("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"), 1)

	cr := rec.ofType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
	require.Len(t, cr, 1, "only services with ClusterRules get a ClusterRole")
	assert.Equal(t, "kplane-svc-legacy-auditor", cr[0].Inputs["metadata"].ObjectValue()["name"].StringValue())
	crb := rec.ofType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
	require.Len(t, crb, 1)
	subj := crb[0].Inputs["subjects"].ArrayValue()[0].ObjectValue()
	assert.Equal(t, "auditor", subj["name"].StringValue())
	assert.Equal(t, "legacy", subj["namespace"].StringValue())

	for _, r := range rec.resources {
		if r.TypeToken != "kplane:index:HardenedCluster" {
			require.NotNil(t, r.RegisterRPC)
			assert.Contains(t, r.RegisterRPC.GetParent(), "kplane:index:HardenedCluster", "%s must be parented to the component", r.Name)
		}
	}
}

func TestBadArgsCreateNothing(t *testing.T) {
	rec, err := run(t, &Args{Teams: []Team{{Name: "web", Namespaces: []string{"web"}}},
		Services: []Service{{Name: "x", Namespace: "web", Rules: []Rule{{Resources: []string{"secrets"}, Verbs: []string{"*"}}}}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `HardenedCluster "test": services[0].rules[0] "*": wildcard`)
	assert.Empty(t, rec.resources, "nothing may be registered when the arguments are invalid")
}

func TestWildcardReasonIsRecorded(t *testing.T) {
	rec, err := run(t, &Args{
		Teams: []Team{{Name: "ops", Namespaces: []string{"ops"}}},
		Services: []Service{{Name: "operator", Namespace: "ops", WildcardReason: "reconciles arbitrary custom resources",
			ClusterRules: []Rule{{APIGroups: []string{"example.com"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}}}},
	})
	require.NoError(t, err)
	cr := rec.ofType("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
	require.Len(t, cr, 1)
	annotations := cr[0].Inputs["metadata"].ObjectValue()["annotations"].ObjectValue()
	assert.Equal(t, "reconciles arbitrary custom resources", annotations[wellknown.WildcardReasonAnnotation].StringValue())
}
