package hardenedcluster

import (
	"cmp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/tests/fixtures"
)

const libraryDir = "gatekeeper"

// libraryArgs are the arguments the library's sample constraints are rendered with: a team
// namespace "apps", one registry, and per policy an exception for workloads named legacy-*.
func libraryArgs() *Args {
	a := &Args{
		Teams:     []Team{{Name: "apps", Namespaces: []string{"apps"}}},
		Admission: AdmissionArgs{AllowedRegistries: []string{"registry.example.com"}, ExpiryImage: expiryImage},
	}
	for _, p := range a.policies() {
		a.Admission.Exceptions = append(a.Admission.Exceptions,
			Exception{Policy: p.Name, Namespace: "apps", Workload: "legacy-*", Reason: "library sample", Owner: "apps", Ticket: "SEC-1", Expires: "2027-01-31"})
	}
	return a
}

// gatekeeperLibrary renders, per policy, the ConstraintTemplate, a sample constraint, samples
// (an allowed Pod and Deployment, each fixture violation of the policy, and a violation covered
// by the exception) and a gator suite.
func gatekeeperLibrary(t *testing.T) map[string][]byte {
	files := map[string][]byte{}
	put := func(path string, v any) {
		b, err := yaml.Marshal(v)
		require.NoError(t, err)
		files[path] = append([]byte("# Generated from components/hardenedcluster/rules by `go test -update`; do not edit.\n"), b...)
	}
	a := libraryArgs()
	for _, p := range a.policies() {
		dir := p.Name
		put(dir+"/template.yaml", gatekeeperTemplate(p))
		put(dir+"/constraint.yaml", a.gatekeeperConstraint(p, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
		cases := []any{}
		sample := func(name, ns string, spec map[string]any, assertion map[string]any, annotations ...map[string]any) {
			obj, _, _ := fixtures.Workload("Deployment", ns, name, spec)
			if name == "allowed-pod" {
				obj, _, _ = fixtures.Workload("Pod", ns, name, spec)
			}
			if len(annotations) > 0 {
				fixtures.Annotate(obj, annotations[0])
			}
			put(dir+"/samples/"+name+".yaml", obj)
			cases = append(cases, map[string]any{"name": name, "object": "samples/" + name + ".yaml", "assertions": []any{assertion}})
		}
		sample("allowed-pod", "apps", rules.GoodPodSpec(), map[string]any{"violations": "no"})
		sample("allowed-deployment", "apps", rules.GoodPodSpec(), map[string]any{"violations": "no"})
		for _, v := range p.Samples {
			spec, ns := rules.GoodPodSpec(), cmp.Or(v.Namespace, "apps")
			v.Mutate(spec)
			sample(v.Name, ns, spec, map[string]any{"violations": 1, "message": regexp.QuoteMeta(p.Name + ": " + v.Want)}, v.Annotations)
		}
		if first := p.Samples[0]; first.Namespace == "" { // an exception names a team namespace
			spec := rules.GoodPodSpec()
			first.Mutate(spec)
			sample("legacy-excepted", "apps", spec, map[string]any{"violations": "no"}, first.Annotations)
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

// TestGatekeeperEngineGraph: the gatekeeper engine installs the official chart (pinned, hooks
// replaced by kplane's own namespace), a template and a constraint per policy with the
// arguments as parameters, and no ValidatingAdmissionPolicies.
func TestGatekeeperEngineGraph(t *testing.T) {
	onDate(t, 2026, 11, 27)
	a := libraryArgs()
	a.Admission.Engine = "gatekeeper"
	a.Admission.Gatekeeper.Values = map[string]any{"replicas": 2}
	rec, err := run(t, a)
	require.NoError(t, err)
	assert.Empty(t, rec.ofType(vapType))

	charts := rec.ofType("kubernetes:helm.sh/v4:Chart")
	require.Len(t, charts, 1)
	in := charts[0].Inputs
	assert.Equal(t, "gatekeeper", in["chart"].StringValue())
	assert.Equal(t, GatekeeperChart.Version, in["version"].StringValue())
	assert.Equal(t, GatekeeperChart.Repo, in["repositoryOpts"].ObjectValue()["repo"].StringValue())
	values := in["values"].ObjectValue()
	assert.Equal(t, "Fail", values["validatingWebhookFailurePolicy"].StringValue(), "fails closed in enforce mode")
	assert.Equal(t, 2.0, values["replicas"].NumberValue(), "user values are laid over kplane's")
	assert.True(t, values["disableMutation"].BoolValue())

	ns := byName(rec.ofType("kubernetes:core/v1:Namespace"), "gatekeeper-system")
	assert.Equal(t, "no-self-managing", ns.Inputs["metadata"].ObjectValue()["labels"].ObjectValue()["admission.gatekeeper.sh/ignore"].StringValue())

	templates := rec.ofType("kubernetes:templates.gatekeeper.sh/v1:ConstraintTemplate")
	assert.Len(t, templates, len(a.policies()))
	registries := rec.ofType("kubernetes:constraints.gatekeeper.sh/v1beta1:KplaneAllowedRegistries")
	require.Len(t, registries, 1)
	params := registries[0].Inputs["spec"].ObjectValue()["parameters"].ObjectValue()
	assert.Equal(t, []string{"registry.example.com/"}, strs(params["registries"]))
	exception := params["exceptions"].ArrayValue()[0].ObjectValue()
	assert.Equal(t, "library sample", exception["reason"].StringValue(), "exceptions stay listed with their reason")

	external := libraryArgs()
	external.Admission.Engine, external.Admission.Gatekeeper.External = "gatekeeper", true
	external.Admission.Mode = "audit"
	rec, err = run(t, external)
	require.NoError(t, err)
	assert.Empty(t, rec.ofType("kubernetes:helm.sh/v4:Chart"), "an external Gatekeeper is not installed")
	assert.Empty(t, byName(rec.ofType("kubernetes:core/v1:Namespace"), "gatekeeper-system").Inputs)
	warn := rec.ofType("kubernetes:constraints.gatekeeper.sh/v1beta1:KplaneNoPrivileged")[0]
	assert.Equal(t, "warn", warn.Inputs["spec"].ObjectValue()["enforcementAction"].StringValue())

	local := libraryArgs()
	local.Admission.Engine, local.Admission.Gatekeeper.Chart.Path = "gatekeeper", t.TempDir()
	rec, err = run(t, local)
	require.NoError(t, err)
	assert.Equal(t, local.Admission.Gatekeeper.Chart.Path, rec.ofType("kubernetes:helm.sh/v4:Chart")[0].Inputs["chart"].StringValue())
}

// TestGatekeeperImage: a pinned manager image replaces the chart's tag (the chart writes the
// repository alone when the release is empty); without one the chart's stays.
func TestGatekeeperImage(t *testing.T) {
	a := &Args{Admission: AdmissionArgs{Engine: "gatekeeper"}}
	assert.NotContains(t, a.gatekeeperValues(), "image")
	a.Admission.Gatekeeper.Image = "registry.example.com/openpolicyagent/gatekeeper@sha256:" + strings.Repeat("a", 64)
	assert.Equal(t, map[string]any{"repository": a.Admission.Gatekeeper.Image, "release": ""}, a.gatekeeperValues()["image"])
}
