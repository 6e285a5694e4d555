package kubernetes

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/policies/pack"
)

func TestPlatformPolicies(t *testing.T) {
	p := &pack.Pack{Name: "t", Version: "0", Policies: PlatformPolicies()}
	assert.NoError(t, p.Validate())
	msgs := func(r pack.Resource) []string {
		var out []string
		for _, v := range p.Evaluate(r, nil) {
			out = append(out, v.Message)
		}
		return out
	}
	binding := func(actions ...any) pack.Resource {
		return pack.Resource{Type: "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding", Props: map[string]any{
			"metadata": map[string]any{"name": "kplane-no-privileged"}, "spec": map[string]any{"validationActions": actions}}}
	}
	assert.Empty(t, msgs(binding("Deny")))
	assert.Equal(t, []string{"ValidatingAdmissionPolicyBinding kplane-no-privileged: validationActions [Warn Audit] do not include Deny"}, msgs(binding("Warn", "Audit")))
	constraint := func(action string) pack.Resource {
		return pack.Resource{Type: "kubernetes:constraints.gatekeeper.sh/v1beta1:KplaneNoPrivileged", Props: map[string]any{
			"metadata": map[string]any{"name": "kplane-no-privileged"}, "spec": map[string]any{"enforcementAction": action}}}
	}
	assert.Empty(t, msgs(constraint("deny")))
	assert.Len(t, msgs(constraint("warn")), 1)

	// An exception that expired and is still in the arguments fails the preview.
	vap := pack.Resource{Type: "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy", Props: map[string]any{"metadata": map[string]any{
		"name": "kplane-read-only-root", "annotations": map[string]any{wellknown.ExpiredExceptionsAnnotation: `[{"policy":"kplane-read-only-root","namespace":"web","workload":"legacy","owner":"web","ticket":"SEC-9","expires":"2026-01-31"}]`}}}}
	assert.Equal(t, []string{"exception to kplane-read-only-root for web/legacy (owner web, ticket SEC-9) expired on 2026-01-31"}, msgs(vap))
	assert.Equal(t, pack.Mandatory, p.Evaluate(vap, nil)[0].Level)

	ns := func(name string, labels map[string]any) pack.Resource {
		return pack.Resource{Type: "kubernetes:core/v1:Namespace", Props: map[string]any{"metadata": map[string]any{"name": name, "labels": labels}}}
	}
	assert.Empty(t, msgs(ns("web", map[string]any{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.37"})))
	assert.Equal(t, []string{"Namespace web: no pod-security.kubernetes.io/enforce level"}, msgs(ns("web", nil)))
	assert.Equal(t, []string{"Namespace web: enforce-version is not pinned"}, msgs(ns("web", map[string]any{"pod-security.kubernetes.io/enforce": "baseline"})))
	assert.Equal(t, []string{"Namespace web: enforces the privileged level"}, msgs(ns("web", map[string]any{"pod-security.kubernetes.io/enforce": "privileged", "pod-security.kubernetes.io/enforce-version": "v1.37"})))
	assert.Empty(t, msgs(ns("kube-system", nil)))
}

func TestVaultPolicies(t *testing.T) {
	p := &pack.Pack{Name: "t", Version: "0", Policies: []pack.Policy{VaultPolicies()}}
	assert.NoError(t, p.Validate())
	plan := func(policies map[string]string) pack.Resource {
		raw, _ := json.Marshal(map[string]any{"kvMount": "secret", "policies": policies})
		return pack.Resource{Type: "kubernetes:core/v1:ConfigMap", Props: map[string]any{
			"metadata": map[string]any{"name": "kplane-vault-plan"}, "data": map[string]any{"plan.json": string(raw)}}}
	}
	msgs := func(r pack.Resource) []string {
		var out []string
		for _, v := range p.Evaluate(r, nil) {
			out = append(out, v.Message)
		}
		return out
	}
	// What the hardened cluster renders passes.
	args := &hardenedcluster.Args{Teams: []hardenedcluster.Team{{Name: "p", Namespaces: []string{"payments"}}},
		Services: []hardenedcluster.Service{{Name: "ledger", Namespace: "payments", Secrets: []hardenedcluster.ServiceSecret{{Name: "db"}}}}}
	assert.Empty(t, msgs(plan(args.VaultPlan().Policies)))
	assert.Equal(t, []string{`policy broad: path "secret/data/*": the wildcard reaches beyond one service's path`, `policy broad: path "secret/data/*" grants sudo`},
		msgs(plan(map[string]string{"broad": `path "secret/data/*" { capabilities = ["read", "sudo"] }`})))
	assert.Len(t, msgs(plan(map[string]string{"team": `path "secret/data/payments/*" { capabilities = ["read"] }`})), 1, "a whole namespace is too broad")
}
