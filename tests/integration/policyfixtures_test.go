package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	yamlv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/yaml/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/policies"
	"github.com/kplane/kplane/policies/fixture"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

// TestPolicyFixturesPreview runs every policy's fixtures (policies/testdata) through real
// `pulumi preview --policy-pack` against a real API server that holds the upstream CRDs (Velero,
// Istio, Kong), so each fixture is also valid to upstream's schema (server-side dry run). All the
// compliant fixtures together preview clean; the violating ones of the resource policies, with
// one Deployment per pod-spec violation, fail with each policy's message; each stack policy's
// violating fixture fails alone, with exactly its policy.
func TestPolicyFixturesPreview(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	velero := "github.com/vmware-tanzu/velero@" + pinned(t, "VELERO_VERSION")
	upstreamCRD(t, c, velero, "config/crd/v1/bases/velero.io_backupstoragelocations.yaml")
	upstreamCRD(t, c, velero, "config/crd/v1/bases/velero.io_schedules.yaml")
	upstreamCRD(t, c, "istio.io/api@"+pinned(t, "ISTIO_API_VERSION"), "kubernetes/customresourcedefinitions.gen.yaml")
	kong := "github.com/kong/kubernetes-ingress-controller@" + pinned(t, "KONG_CRD_VERSION")
	upstreamCRD(t, c, kong, "railgun/config/crd/bases/configuration.konghq.com_kongplugins.yaml")
	upstreamCRD(t, c, kong, "railgun/config/crd/bases/configuration.konghq.com_kongclusterplugins.yaml")
	packBin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-kubernetes")

	p, err := policies.Pack()
	require.NoError(t, err)
	stackPolicy := map[string]bool{}
	for _, pol := range p.Policies {
		stackPolicy[pol.Name] = pol.StackCheck != nil
	}
	cases, err := fixture.Load("../../policies/testdata")
	require.NoError(t, err)

	var manifests []string
	var objs []any
	program := func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		for i, m := range manifests {
			if _, err := yamlv2.NewConfigGroup(ctx, fmt.Sprintf("fixture-%d", i), &yamlv2.ConfigGroupArgs{Yaml: pulumi.String(m)}, pulumi.Provider(k8s)); err != nil {
				return err
			}
		}
		if len(objs) > 0 {
			_, err = yamlv2.NewConfigGroup(ctx, "workloads", &yamlv2.ConfigGroupArgs{Objs: pulumi.ToArray(objs)}, pulumi.Provider(k8s))
		}
		return err
	}
	s := openStack(t, "policy-fixtures", program, nil, t.TempDir())
	// preview returns the mandatory and advisory violations the engine reported, "policy: message".
	preview := func() (mandatory, advisory []string, err error) {
		ch := make(chan events.EngineEvent)
		var mu sync.Mutex
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range ch {
				if pe := ev.PolicyEvent; pe != nil {
					mu.Lock()
					line := pe.PolicyName + ": " + pe.Message
					if pe.EnforcementLevel == "mandatory" {
						mandatory = append(mandatory, line)
					} else {
						advisory = append(advisory, line)
					}
					mu.Unlock()
				}
			}
		}()
		_, err = s.Preview(context.Background(), optpreview.PolicyPacks(packBin), optpreview.EventStreams(ch))
		<-done
		return mandatory, advisory, err
	}

	manifests = nil
	for _, cs := range cases {
		manifests = append(manifests, cs.PassYAML)
	}
	mandatory, advisory, err := preview()
	require.NoError(t, err, "every compliant fixture previews clean")
	assert.Empty(t, mandatory)
	assert.Empty(t, advisory)

	// The resource policies' violations, all in one preview.
	manifests, objs = nil, []any{map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "fx-workloads",
		"labels": map[string]any{"pod-security.kubernetes.io/enforce": "privileged", "pod-security.kubernetes.io/enforce-version": "v1.37", wellknown.ManagedByLabel: wellknown.ManagedBy}}}}
	for _, cs := range cases {
		if !stackPolicy[cs.Policy] {
			manifests = append(manifests, cs.FailYAML)
		}
	}
	// (Allowed registries and namespaces take the environment's arguments; the pack's defaults
	// restrict neither.)
	violations := slices.DeleteFunc(rules.Samples(), func(v rules.Sample) bool {
		return v.Policy == rules.AllowedRegistries || v.Policy == rules.AllowedNamespaces
	})
	for _, v := range violations {
		spec := rules.GoodPodSpec()
		v.Mutate(spec)
		obj, _, _ := fixtures.Workload("Deployment", "fx-workloads", v.Name, spec)
		fixtures.Annotate(obj, v.Annotations)
		objs = append(objs, obj)
	}
	mandatory, advisory, err = preview()
	require.Error(t, err, "mandatory violations fail the preview")
	found := strings.Join(append(mandatory, advisory...), "\n")
	for _, cs := range cases {
		if !stackPolicy[cs.Policy] {
			assert.Contains(t, found, cs.Policy+": ", cs.Policy)
			assert.Contains(t, found, cs.Want, cs.Policy)
		}
	}
	for _, v := range violations {
		assert.Contains(t, found, v.Policy+": "+v.Want, v.Name)
	}

	// Each stack policy's violation alone: exactly that policy answers.
	objs = nil
	for _, cs := range cases {
		if !stackPolicy[cs.Policy] {
			continue
		}
		manifests = []string{cs.FailYAML}
		mandatory, advisory, err = preview()
		require.Error(t, err, cs.Policy)
		assert.Empty(t, advisory, cs.Policy)
		require.NotEmpty(t, mandatory, cs.Policy)
		assert.True(t, slices.ContainsFunc(mandatory, func(m string) bool { return strings.Contains(m, cs.Want) }), "%s: %v", cs.Policy, mandatory)
		for _, m := range mandatory {
			assert.True(t, strings.HasPrefix(m, cs.Policy+": "), "%s: only its policy answers: %s", cs.Policy, m)
		}
	}
}
