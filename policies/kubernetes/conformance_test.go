package kubernetes

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/internal/k8sobj"
	"github.com/kplane/kplane/policies/pack"
)

// podSecurityModule is the release of k8s.io/pod-security-admission whose fixtures are used: the
// Kubernetes release kplane pins (PodSecurityVersion).
const podSecurityModule = "v0.37.2"

// podSecurityFixtures is Kubernetes' own Pod Security conformance data: for a level, the pods
// the standard admits (pass) and refuses (fail), of the version kplane pins.
func podSecurityFixtures(t *testing.T, level, outcome string) map[string]map[string]any {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "k8s.io/pod-security-admission@"+podSecurityModule).Output()
	require.NoError(t, err, "k8s.io/pod-security-admission from the Go module proxy (its test data)")
	var mod struct{ Dir string }
	require.NoError(t, json.Unmarshal(out, &mod))
	dir := filepath.Join(mod.Dir, "test", "testdata", level, k8sobj.PodSecurityVersion, outcome)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	fixtures := map[string]map[string]any{}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		var pod map[string]any
		require.NoError(t, yaml.Unmarshal(raw, &pod))
		fixtures[level+"/"+outcome+"/"+e.Name()] = pod
	}
	require.NotEmpty(t, fixtures)
	return fixtures
}

// platformOnly are kplane's rules beyond Pod Security: a pod the standard admits may still be
// refused by these, and by nothing else.
var platformOnly = []string{"kplane-image-digest", "kplane-allowed-registries", "kplane-read-only-root", "kplane-allowed-namespaces"}

// restrictedOnly are the rules a baseline-level pod need not meet (kplane holds every namespace
// to restricted).
var restrictedOnly = []string{"kplane-privilege-escalation", "kplane-run-as-non-root", "kplane-capabilities", "kplane-seccomp", "kplane-volume-types", "kplane-proc-mount"}

// TestPodSecurityConformance: the pack (the same CEL as the cluster's policies) refuses every
// pod Kubernetes' Pod Security fixtures fail, and admits every pod they pass apart from
// kplane's platform-only rules, which it names.
func TestPodSecurityConformance(t *testing.T) {
	policies, err := WorkloadPolicies(&hardenedcluster.Args{})
	require.NoError(t, err)
	p := &pack.Pack{Name: "conformance", Version: "0", Policies: policies}
	judge := func(pod map[string]any) []string {
		var names []string
		for _, v := range p.Evaluate(pack.Resource{Type: "kubernetes:core/v1:Pod", Name: "fixture", Props: pod}, nil) {
			if !slices.Contains(names, v.Policy.Name) {
				names = append(names, v.Policy.Name)
			}
		}
		return names
	}
	for _, level := range []string{"baseline", "restricted"} {
		for name, pod := range podSecurityFixtures(t, level, "fail") {
			assert.NotEmpty(t, judge(pod), "%s: the standard refuses it; kplane must too", name)
		}
		allowed := platformOnly
		if level == "baseline" {
			allowed = append(slices.Clone(platformOnly), restrictedOnly...)
		}
		for name, pod := range podSecurityFixtures(t, level, "pass") {
			for _, policy := range judge(pod) {
				assert.Contains(t, allowed, policy, "%s: the standard admits it; kplane refuses it with %s", name, policy)
			}
		}
	}
}
