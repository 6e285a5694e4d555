package hardenedcluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kplane/kplane/tests/fixtures"
)

const libraryDir = "gatekeeper"

// gatekeeperLibrary renders, per pod-spec policy, the ConstraintTemplate, a constraint, samples
// (an allowed Pod and Deployment, and each fixture violation of the policy) and a gator suite.
// Policies computed from a stack's arguments (allowed namespaces, registries) are not in it.
func gatekeeperLibrary(t *testing.T) map[string][]byte {
	files := map[string][]byte{}
	put := func(path string, v any) {
		b, err := yaml.Marshal(v)
		require.NoError(t, err)
		files[path] = append([]byte("# Generated from components/hardenedcluster by `go test -update`; do not edit.\n"), b...)
	}
	a := &Args{}
	violations := map[string][]fixtures.Violation{}
	for _, v := range fixtures.Violations() {
		violations[v.Policy] = append(violations[v.Policy], v)
	}
	for _, p := range a.policies() {
		dir := p.Name
		put(dir+"/template.yaml", gatekeeperTemplate(p))
		put(dir+"/constraint.yaml", a.gatekeeperConstraint(p))
		cases := []any{}
		for _, kind := range []string{"Pod", "Deployment"} {
			obj, _, _ := fixtures.Workload(kind, "apps", "good", fixtures.GoodPodSpec())
			name := "allowed-" + map[string]string{"Pod": "pod", "Deployment": "deployment"}[kind]
			put(dir+"/samples/"+name+".yaml", obj)
			cases = append(cases, map[string]any{"name": name, "object": "samples/" + name + ".yaml", "assertions": []any{map[string]any{"violations": "no"}}})
		}
		require.NotEmpty(t, violations[p.Name], "policy %s has no disallowed fixture in tests/fixtures", p.Name)
		for _, v := range violations[p.Name] {
			spec := fixtures.GoodPodSpec()
			v.Mutate(spec)
			obj, _, _ := fixtures.Workload("Deployment", "apps", "bad", spec)
			put(dir+"/samples/"+v.Name+".yaml", obj)
			cases = append(cases, map[string]any{"name": v.Name, "object": "samples/" + v.Name + ".yaml",
				"assertions": []any{map[string]any{"violations": 1, "message": regexp.QuoteMeta(p.Name + ": " + v.Want)}}})
		}
		put(dir+"/suite.yaml", map[string]any{
			"apiVersion": "test.gatekeeper.sh/v1alpha1", "kind": "Suite", "metadata": map[string]any{"name": p.Name},
			"tests": []any{map[string]any{"name": p.Name, "template": "template.yaml", "constraint": "constraint.yaml", "cases": cases}},
		})
	}
	return files
}

// TestGatekeeperLibrary keeps the committed library equal to what the catalog renders.
func TestGatekeeperLibrary(t *testing.T) {
	files := gatekeeperLibrary(t)
	if *update {
		require.NoError(t, os.RemoveAll(libraryDir))
		for path, b := range files {
			require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(libraryDir, path)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(libraryDir, path), b, 0o644))
		}
	}
	var committed []string
	require.NoError(t, filepath.Walk(libraryDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(libraryDir, path)
			committed = append(committed, rel)
		}
		return err
	}))
	var want []string
	for path, b := range files {
		want = append(want, path)
		got, err := os.ReadFile(filepath.Join(libraryDir, path))
		require.NoError(t, err, "run go test -update to regenerate %s", libraryDir)
		assert.Equal(t, string(b), string(got), "%s is stale: run go test -update", path)
	}
	sort.Strings(want)
	assert.Equal(t, want, committed, "files in %s that the catalog does not render", libraryDir)
}

// TestGatorVerify runs Gatekeeper's own test runner on every template's suite.
func TestGatorVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("needs gator from the tool cache (make test)")
	}
	gator, err := exec.LookPath("gator")
	require.NoError(t, err, "gator not on PATH: run `make tools` and `eval \"$(make -s env)\"`")
	out, err := exec.Command(gator, "verify", "-v", "./"+libraryDir+"/...").CombinedOutput()
	t.Logf("%s", out)
	require.NoError(t, err, "gator verify failed")
	assert.Contains(t, string(out), "ok")
}
