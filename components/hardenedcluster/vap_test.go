package hardenedcluster

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	vapType     = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
	bindingType = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
)

func byName(rs []pulumi.MockResourceArgs, name string) pulumi.MockResourceArgs {
	for _, r := range rs {
		if r.Inputs["metadata"].ObjectValue()["name"].StringValue() == name {
			return r
		}
	}
	return pulumi.MockResourceArgs{}
}

// admissionResources registers a HardenedCluster on a fixed date and returns its policies and
// bindings.
func admissionResources(t *testing.T, args *Args) (policies, bindings []pulumi.MockResourceArgs) {
	t.Helper()
	now = func() time.Time { return time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC) }
	t.Cleanup(func() { now = time.Now })
	rec, err := run(t, args)
	require.NoError(t, err)
	return rec.ofType(vapType), rec.ofType(bindingType)
}

func strs(v resource.PropertyValue) []string {
	var out []string
	for _, x := range v.ArrayValue() {
		out = append(out, x.StringValue())
	}
	return out
}

func TestAdmissionGraphDefaults(t *testing.T) {
	policies, bindings := admissionResources(t, &Args{})
	assert.Len(t, policies, len(rules.All())-2, "catalog + image digest")
	require.Len(t, bindings, len(policies), "one binding per policy")
	for _, b := range bindings {
		spec := b.Inputs["spec"].ObjectValue()
		assert.Equal(t, []string{"Deny"}, strs(spec["validationActions"]), "enforce by default")
		expr := spec["matchResources"].ObjectValue()["namespaceSelector"].ObjectValue()["matchExpressions"].ArrayValue()[0].ObjectValue()
		assert.Equal(t, "NotIn", expr["operator"].StringValue())
		assert.Equal(t, []string{"kube-node-lease", "kube-public", "kube-system"}, strs(expr["values"]))
	}
	p := byName(policies, "kplane-no-privileged")
	spec := p.Inputs["spec"].ObjectValue()
	assert.Equal(t, "Fail", spec["failurePolicy"].StringValue(), "fail closed")
	assert.Len(t, spec["matchConditions"].ArrayValue(), 1, "only the spec-changed condition without exceptions")
	assert.Len(t, spec["variables"].ArrayValue(), len(rules.Variables))
	assert.Equal(t, "CIS 5.2.2, KISA Master-12, PSS baseline", p.Inputs["metadata"].ObjectValue()["annotations"].ObjectValue()[wellknown.ControlsAnnotation].StringValue())
}

func TestAdmissionGraphArguments(t *testing.T) {
	policies, bindings := admissionResources(t, &Args{
		Teams: []Team{{Name: "web", Namespaces: []string{"web"}}},
		Admission: AdmissionArgs{
			Mode: "audit", AllowedRegistries: []string{"registry.example.com/"}, AllowImageTags: true,
			Disabled: []string{"kplane-host-ports"}, ExemptNamespaces: []string{"agents"}, ExpiryImage: expiryImage,
			Exceptions: []Exception{
				{Policy: "kplane-read-only-root", Namespace: "web", Workload: "legacy", Reason: "tmp files", Owner: "team-db", Ticket: "SEC-101", Expires: "2027-01-31"},
				{Policy: "kplane-read-only-root", Namespace: "web", Workload: "gone", Reason: "ended", Owner: "team-db", Ticket: "SEC-101", Expires: "2026-01-31"},
			},
		},
	})
	var names []string
	for _, p := range policies {
		names = append(names, p.Inputs["metadata"].ObjectValue()["name"].StringValue())
	}
	assert.Contains(t, names, "kplane-allowed-registries")
	assert.Contains(t, names, "kplane-allowed-namespaces")
	assert.NotContains(t, names, "kplane-image-digest", "AllowImageTags")
	assert.NotContains(t, names, "kplane-host-ports", "Disabled")
	for _, b := range bindings {
		spec := b.Inputs["spec"].ObjectValue()
		assert.Equal(t, []string{"Warn", "Audit"}, strs(spec["validationActions"]), "audit mode")
		expr := spec["matchResources"].ObjectValue()["namespaceSelector"].ObjectValue()["matchExpressions"].ArrayValue()[0].ObjectValue()
		assert.Contains(t, strs(expr["values"]), "agents")
	}
	ro := byName(policies, "kplane-read-only-root")
	conds := ro.Inputs["spec"].ObjectValue()["matchConditions"].ArrayValue()
	require.Len(t, conds, 2, "spec-changed + the one active exception; the expired one is dropped")
	assert.Contains(t, conds[1].ObjectValue()["expression"].StringValue(), "object.metadata.name.matches('^legacy(-")
	assert.Equal(t, "exception-0-expires-2027-01-31", conds[1].ObjectValue()["name"].StringValue(), "the expiry CronJob reads the date from the name")
	var listed []Exception
	require.NoError(t, json.Unmarshal([]byte(ro.Inputs["metadata"].ObjectValue()["annotations"].ObjectValue()[wellknown.ExceptionsAnnotation].StringValue()), &listed))
	require.Len(t, listed, 1)
	assert.Equal(t, "tmp files", listed[0].Reason)
}
