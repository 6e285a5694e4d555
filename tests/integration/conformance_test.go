package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/tests/fixtures"
	"github.com/kplane/kplane/tests/testbed"
)

// conformanceCase is one Pod Security fixture in namespace ns under a name the API accepts.
type conformanceCase struct {
	file, name string
	pod        map[string]any
	pass       bool
	allowed    []string // the kplane policies that may refuse a pass fixture
}

func conformanceCases(t *testing.T, ns string) []conformanceCase {
	t.Helper()
	var cases []conformanceCase
	for _, level := range []string{"baseline", "restricted"} {
		for _, outcome := range []string{"fail", "pass"} {
			pods, err := fixtures.PodSecurity(level, outcome)
			require.NoError(t, err)
			for _, file := range slices.Sorted(maps.Keys(pods)) {
				pod := pods[file]
				name := fmt.Sprintf("fx-%d", len(cases))
				meta, _ := pod["metadata"].(map[string]any) // its annotations (AppArmor) count
				if meta == nil {
					meta = map[string]any{}
				}
				meta["name"], meta["namespace"] = name, ns
				pod["metadata"] = meta
				// As the API server stores it (gator does no defaulting): a volume without a source is an emptyDir.
				if spec, ok := pod["spec"].(map[string]any); ok {
					vols, _ := spec["volumes"].([]any)
					for _, v := range vols {
						if m := v.(map[string]any); len(m) == 1 {
							m["emptyDir"] = map[string]any{}
						}
					}
				}
				allowed := fixtures.PodSecurityPlatformOnly
				if level == "baseline" {
					allowed = append(slices.Clone(allowed), rules.RestrictedOnly()...)
				}
				cases = append(cases, conformanceCase{file: file, name: name, pod: pod, pass: outcome == "pass", allowed: allowed})
			}
		}
	}
	return cases
}

// TestPodSecurityConformanceGatekeeper: Kubernetes' Pod Security fixtures through the real
// Gatekeeper engine (gator test) with kplane's generated library: every fail fixture violates a
// kplane constraint; a pass fixture violates only the platform-only rules (the library's sample
// constraints require digests, registry.example.com and read-only roots).
func TestPodSecurityConformanceGatekeeper(t *testing.T) {
	integration(t)
	gator, err := exec.LookPath("gator")
	require.NoError(t, err, "gator from the tool cache")
	dir := t.TempDir()
	library := "../../components/hardenedcluster/gatekeeper"
	policies, err := os.ReadDir(library)
	require.NoError(t, err)
	for _, p := range policies {
		for _, f := range []string{"template.yaml", "constraint.yaml"} {
			raw, err := os.ReadFile(filepath.Join(library, p.Name(), f))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, p.Name()+"-"+f), raw, 0o644))
		}
	}
	cases := conformanceCases(t, "apps") // the library's team namespace
	for _, c := range cases {
		raw, err := yaml.Marshal(c.pod)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "pod-"+c.name+".yaml"), raw, 0o644))
	}
	out, _ := exec.Command(gator, "test", "-f", dir, "-o", "json").Output() // exits 1 when anything violates
	var results []struct {
		Msg        string `json:"msg"`
		Constraint struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"constraint"`
		Object struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"violatingObject"`
	}
	require.NoError(t, json.Unmarshal(out, &results), "%s", out)
	violated := map[string][]string{}
	for _, r := range results {
		require.NotContains(t, r.Msg, "resulted in error", "a template fails to evaluate: %s", r.Msg)
		violated[r.Object.Metadata.Name] = append(violated[r.Object.Metadata.Name], r.Constraint.Metadata.Name)
	}
	for _, c := range cases {
		if !c.pass {
			standard := slices.DeleteFunc(slices.Clone(violated[c.name]), func(p string) bool { return slices.Contains(fixtures.PodSecurityPlatformOnly, p) })
			assert.NotEmpty(t, standard, "%s: the standard refuses it; Gatekeeper with kplane's library must too, by a Pod Security rule", c.file)
			continue
		}
		for _, policy := range violated[c.name] {
			assert.Contains(t, c.allowed, policy, "%s: the standard admits it; Gatekeeper refuses it with %s", c.file, policy)
		}
	}
	t.Logf("%d fixtures through gator, %d violations", len(cases), len(results))
}

// TestPodSecurityConformanceVAP: the same fixtures, as server-side dry runs on a real API
// server enforcing kplane's ValidatingAdmissionPolicies (Pod Security Admission off in the
// namespace, so kplane's policies answer; image tags allowed and read-only root off, so that a
// pass fixture must be admitted outright: the API server names only the first refusal).
func TestPodSecurityConformanceVAP(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	ctx := context.Background()
	const ns = "conformance"
	s := hardenedStack(t, c, "conformance", &hardenedcluster.Args{PodSecurityVersion: "v1.37",
		Teams:     []hardenedcluster.Team{{Name: "conformance", Namespaces: []string{ns}}},
		Admission: hardenedcluster.AdmissionArgs{AllowImageTags: true, Disabled: []string{"kplane-read-only-root"}}}, nil)
	_, err := s.Up(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = s.Destroy(ctx) })
	dc, err := c.Dynamic()
	require.NoError(t, err)
	_, err = dc.Resource(gvrNamespace).Patch(ctx, ns, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":null,"pod-security.kubernetes.io/warn":null,"pod-security.kubernetes.io/audit":null}}}`), k8smeta.PatchOptions{})
	require.NoError(t, err)
	cases := conformanceCases(t, ns)
	create := func(c conformanceCase) error {
		_, err := dc.Resource(gvrPod).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: c.pod}, k8smeta.CreateOptions{DryRun: []string{"All"}})
		return err
	}
	refused(t, func() error { return create(cases[0]) }, "kplane-") // the policies are in force
	invalid := 0
	for _, cs := range cases {
		err := create(cs)
		switch {
		case !cs.pass && apierrors.IsInvalid(err):
			invalid++ // the API's own validation refuses it before admission
		case !cs.pass:
			if assert.Error(t, err, "%s: the standard refuses it; the cluster must too", cs.file) {
				assert.Contains(t, err.Error(), "kplane-", "%s: refused by kplane's policies", cs.file)
			}
		case err != nil:
			ok := slices.ContainsFunc(cs.allowed, func(p string) bool { return strings.Contains(err.Error(), p+": ") })
			assert.True(t, ok, "%s: the standard admits it; the cluster refuses it: %v", cs.file, err)
		}
	}
	t.Logf("%d fixtures as server dry runs (%d refused by the API's own validation before admission)", len(cases), invalid)
}
