package kubernetes

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/policies/pack"
)

func role(kind string, rules ...map[string]any) pack.Resource {
	var list []any
	for _, r := range rules {
		list = append(list, r)
	}
	return pack.Resource{Type: "kubernetes:rbac.authorization.k8s.io/v1:" + kind, Name: "r", Props: map[string]any{"metadata": map[string]any{"name": "svc"}, "rules": list}}
}

func rule(groups, resources, verbs []any) map[string]any {
	return map[string]any{"apiGroups": groups, "resources": resources, "verbs": verbs}
}

// TestRBACPolicies: a compliant and a violating resource per policy, each violation named.
func TestRBACPolicies(t *testing.T) {
	p := &pack.Pack{Name: "t", Version: "0", Policies: append(RBACPolicies(), ResourceLimits())}
	assert.NoError(t, p.Validate())
	names := func(r pack.Resource) []string {
		var out []string
		for _, v := range p.Evaluate(r, nil) {
			out = append(out, v.Policy.Name+": "+v.Message)
		}
		return out
	}
	assert.Empty(t, names(role("Role", rule([]any{""}, []any{"configmaps"}, []any{"get", "watch"}))))
	assert.Equal(t, []string{`kplane-rbac-no-wildcards: Role svc rules[0]: wildcard "*" in apiGroups, resources or verbs`},
		names(role("Role", rule([]any{""}, []any{"configmaps"}, []any{"*"}))))
	assert.Equal(t, []string{"kplane-rbac-secrets: Role svc rules[0]: list/watch on secrets reads every Secret of its scope"},
		names(role("Role", rule([]any{""}, []any{"secrets"}, []any{"list"}))))
	assert.Empty(t, names(role("Role", map[string]any{"apiGroups": []any{""}, "resources": []any{"secrets"}, "resourceNames": []any{"db"}, "verbs": []any{"get"}})))
	drill := role("ClusterRole", rule([]any{""}, []any{"secrets"}, []any{"get", "list"}))
	drill.Props["metadata"] = map[string]any{"name": "svc", "annotations": map[string]any{wellknown.SecretsReadReasonAnnotation: "verifies restored Secrets in scratch namespaces"}}
	assert.Empty(t, names(drill), "a kplane role that says why it lists Secrets")
	assert.Equal(t, []string{"kplane-rbac-escalation: ClusterRole svc rules[0]: grants bind, escalate or impersonate (privilege escalation)"},
		names(role("ClusterRole", rule([]any{"rbac.authorization.k8s.io"}, []any{"clusterroles"}, []any{"escalate"}))))
	// The fleet member's deployer says why it escalates: accepted on its own roles only.
	deployer := role("ClusterRole", rule([]any{"rbac.authorization.k8s.io"}, []any{"clusterroles", "roles"}, []any{"bind", "escalate"}))
	deployer.Props["metadata"] = map[string]any{"name": "svc", "annotations": map[string]any{wellknown.EscalationReasonAnnotation: "installs the platform's RBAC"}}
	deployer.URN = "urn:pulumi:prod::kplane-fleet::kplane:index:FleetMember$kubernetes:rbac.authorization.k8s.io/v1:ClusterRole::seoul-kplane-platform-deployer"
	assert.Empty(t, names(deployer))
	deployer.URN = "urn:pulumi:prod::shop::kubernetes:rbac.authorization.k8s.io/v1:ClusterRole::mine"
	assert.Len(t, names(deployer), 1, "the reason on anyone else's role is no exception")
	assert.Equal(t, []string{"kplane-rbac-escalation: ClusterRole svc rules[0]: grants nodes/proxy (the kubelet API, bypassing admission and audit)"},
		names(role("ClusterRole", rule([]any{""}, []any{"nodes/proxy"}, []any{"get"}))))
	assert.Len(t, names(role("ClusterRole", rule([]any{""}, []any{"pods"}, []any{"create"}))), 1, "pod creation everywhere")
	assert.Empty(t, names(role("Role", rule([]any{""}, []any{"pods"}, []any{"create"}))), "pod creation in one namespace is a team's business")

	binding := func(roleName, group string) pack.Resource {
		return pack.Resource{Type: "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", Name: "b", Props: map[string]any{
			"metadata": map[string]any{"name": "b"}, "roleRef": map[string]any{"name": roleName},
			"subjects": []any{map[string]any{"kind": "Group", "name": group}}}}
	}
	assert.Empty(t, names(binding("view", "team")))
	assert.Equal(t, []string{"kplane-rbac-cluster-admin: ClusterRoleBinding b: binds cluster-admin", "kplane-rbac-cluster-admin: ClusterRoleBinding b: binds the group system:masters"},
		names(binding("cluster-admin", "system:masters")))

	chartRole := role("ClusterRole", rule([]any{"*"}, []any{"*"}, []any{"*"}))
	chartRole.URN = "urn:pulumi:dev::kplane::kplane:index:HardenedCluster$kubernetes:helm.sh/v4:Chart$kubernetes:rbac.authorization.k8s.io/v1:ClusterRole::gatekeeper-manager-role"
	got := p.Evaluate(chartRole, nil)
	assert.Equal(t, pack.Advisory, got[0].Level, "an upstream chart's objects are reported, not blocking")
	assert.Contains(t, got[0].Message, "upstream Helm chart")

	limited := rules.GoodPodSpec()
	rules.Container(limited)["resources"] = map[string]any{"requests": map[string]any{"cpu": "10m", "memory": "32Mi"}, "limits": map[string]any{"memory": "64Mi"}}
	assert.Empty(t, names(resource(t, "Deployment", "apps", "web", limited)))
	assert.Equal(t, []string{"kplane-resource-limits: Deployment web container app: resources.requests.cpu/memory and limits.memory must be set"},
		names(resource(t, "Deployment", "apps", "web", rules.GoodPodSpec())))
	assert.Len(t, names(resource(t, "CronJob", "apps", "nightly", rules.GoodPodSpec())), 1, "CronJobs' containers too")
}
