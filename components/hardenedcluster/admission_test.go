package hardenedcluster

import (
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
)

var update = flag.Bool("update", false, "rewrite golden files")

func policyNames(ps []rules.Policy) []string {
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return names
}

func TestPolicySelection(t *testing.T) {
	a := &Args{}
	names := policyNames(a.policies())
	assert.Contains(t, names, "kplane-image-digest", "digests are required by default")
	assert.NotContains(t, names, "kplane-allowed-registries", "no registries given: no registry policy")
	assert.NotContains(t, names, "kplane-allowed-namespaces", "no teams: no namespace allow-list")
	assert.Len(t, names, len(rules.All())-2)

	a = &Args{
		Teams:     []Team{{Name: "web", Namespaces: []string{"web"}}},
		Admission: AdmissionArgs{AllowedRegistries: []string{"registry.example.com/"}, AllowImageTags: true, Disabled: []string{"kplane-read-only-root"}},
	}
	names = policyNames(a.policies())
	assert.Contains(t, names, "kplane-allowed-registries")
	assert.Contains(t, names, "kplane-allowed-namespaces")
	assert.NotContains(t, names, "kplane-image-digest")
	assert.NotContains(t, names, "kplane-read-only-root")
	assert.IsIncreasing(t, names, "policies are sorted, so previews are stable")
	assert.ElementsMatch(t, PolicyNames(), append(policyNames(a.policies()), "kplane-image-digest", "kplane-read-only-root"))
}

// onDate pins the clock exceptions are judged by.
func onDate(t *testing.T, y int, m time.Month, d int) {
	now = func() time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.UTC) }
	t.Cleanup(func() { now = time.Now })
}

func TestExceptions(t *testing.T) {
	onDate(t, 2026, 11, 27)
	a := &Args{Admission: AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{
		{Policy: "kplane-read-only-root", Namespace: "db", Workload: "postgres", Reason: "writes its socket to /var/run", Owner: "team-db", Ticket: "SEC-101", Expires: "2026-12-31"},
		{Policy: "kplane-read-only-root", Namespace: "legacy", Reason: "migration", Owner: "team-db", Ticket: "SEC-101", Expires: "2026-01-31"},
		{Policy: "kplane-host-path", Namespace: "db", Reason: "r", Owner: "team-db", Ticket: "SEC-101", Expires: "2027-01-01"},
	}}}
	require.NoError(t, a.Validate())
	active, expired := a.activeExceptions("kplane-read-only-root", time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	require.Len(t, active, 1)
	assert.Equal(t, "postgres", active[0].Workload)
	require.Len(t, expired, 1)
	assert.Equal(t, "legacy", expired[0].Namespace)
	active, _ = a.activeExceptions("kplane-read-only-root", time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC))
	assert.Len(t, active, 1, "an exception applies through its last day")

	assert.Equal(t, `!(request.namespace == 'db' && (object.metadata.name.matches('^postgres(-([0-9]+|[bcdfghjklmnpqrstvwxz2456789]{5,10}))?$') || (has(object.metadata.generateName) && object.metadata.generateName.matches('^postgres-(([0-9]+|[bcdfghjklmnpqrstvwxz2456789]{5,10})-)?$'))))`,
		a.Admission.Exceptions[0].exceptionCondition())
	assert.Equal(t, `!(request.namespace == 'legacy')`, a.Admission.Exceptions[1].exceptionCondition())
}

const expiryImage = "registry.example.com/kplane-admission@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestAdmissionValidate(t *testing.T) {
	onDate(t, 2026, 11, 27)
	ok := Exception{Policy: "kplane-host-path", Namespace: "db", Reason: "backup agent", Owner: "team-db", Ticket: "SEC-101", Expires: "2027-01-31"}
	cases := map[string]struct {
		admission AdmissionArgs
		want      string
	}{
		"bad mode":            {AdmissionArgs{Mode: "dryrun"}, `admission.mode "dryrun": use "enforce" or "audit", or leave it unset`},
		"unknown disabled":    {AdmissionArgs{Disabled: []string{"kplane-no-priviledged"}}, `admission.disabled[0] "kplane-no-priviledged": no such policy; known: kplane-allowed-namespaces`},
		"unknown policy":      {AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{func() Exception { e := ok; e.Policy = "no-root"; return e }()}}, `admission.exceptions[0].policy "no-root": no such policy`},
		"no expiry":           {AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{func() Exception { e := ok; e.Expires = ""; return e }()}}, "admission.exceptions[0].expires: required; an exception without an end date is a permanent hole"},
		"bad date":            {AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{func() Exception { e := ok; e.Expires = "31/01/2027"; return e }()}}, `admission.exceptions[0].expires "31/01/2027": use a date like 2026-12-31`},
		"no reason":           {AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{func() Exception { e := ok; e.Reason = " "; return e }()}}, "admission.exceptions[0].reason: required"},
		"no namespace":        {AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{func() Exception { e := ok; e.Namespace = ""; return e }()}}, "admission.exceptions[0].namespace \"\": required"},
		"registry with quote": {AdmissionArgs{AllowedRegistries: []string{"evil'/"}}, `admission.allowedRegistries[0] "evil'/"`},
		"short name registry": {AdmissionArgs{AllowedRegistries: []string{"library"}}, `admission.allowedRegistries[0] "library": give a registry host`},
		"exempt ns":           {AdmissionArgs{ExemptNamespaces: []string{"Agents"}}, `admission.exemptNamespaces[0] "Agents"`},
		"valid":               {AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{ok}, Mode: "audit"}, ""},
		"no owner":            {AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{func() Exception { e := ok; e.Owner = ""; return e }()}}, "admission.exceptions[0].owner: required"},
		"no ticket":           {AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{func() Exception { e := ok; e.Ticket = ""; return e }()}}, "admission.exceptions[0].ticket: required"},
		"too far ahead":       {AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{func() Exception { e := ok; e.Expires = "2027-03-01"; return e }()}}, `admission.exceptions[0].expires "2027-03-01": more than 90 days ahead (the latest is 2027-02-25)`},
		"raised cap":          {AdmissionArgs{ExpiryImage: expiryImage, MaxExceptionDays: 180, Exceptions: []Exception{func() Exception { e := ok; e.Expires = "2027-03-01"; return e }()}}, ""},
		"no expiry job":       {AdmissionArgs{Exceptions: []Exception{ok}}, `admission.expiryImage "": exceptions need the expiry CronJob`},
		"unknown engine":      {AdmissionArgs{Engine: "kyverno"}, `admission.engine "kyverno": use "vap" or "gatekeeper", or leave it unset`},
		"missing local chart": {AdmissionArgs{Engine: "gatekeeper", Gatekeeper: GatekeeperArgs{Chart: addon.Chart{Path: "/no/chart"}}}, `admission.gatekeeper.chart.path "/no/chart": no such chart directory`},
		"bad chart repo":      {AdmissionArgs{Engine: "gatekeeper", Gatekeeper: GatekeeperArgs{Chart: addon.Chart{Repo: "ftp://mirror"}}}, `admission.gatekeeper.chart.repo "ftp://mirror"`},
		"gatekeeper ns":       {AdmissionArgs{Engine: "gatekeeper", Gatekeeper: GatekeeperArgs{Namespace: "GK"}}, `admission.gatekeeper.namespace "GK"`},
		"gatekeeper image":    {AdmissionArgs{Engine: "gatekeeper", Gatekeeper: GatekeeperArgs{Image: "openpolicyagent/gatekeeper:v3.23.1"}}, `admission.gatekeeper.image "openpolicyagent/gatekeeper:v3.23.1": pin the Gatekeeper manager by digest`},
		"external gatekeeper": {AdmissionArgs{Engine: "gatekeeper", Gatekeeper: GatekeeperArgs{External: true, Chart: addon.Chart{Path: "/not/used"}}}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			expectValidation(t, &Args{Admission: tc.admission}, tc.want)
		})
	}
	err := (&Args{Teams: []Team{{Name: "a", Namespaces: []string{"a"}}}, Services: []Service{{Name: "s", Namespace: "a",
		Rules: []Rule{{Resources: []string{"pods"}, Verbs: []string{"lsit"}}}}}}).Validate()
	assert.ErrorContains(t, err, `services[0].rules[0].verbs[0] "lsit": unknown verb`)
}

// TestExceptionNames: an exception covers its workload's whole name and what its controllers
// name after it, not another workload that shares the prefix; "*" asks for a prefix.
func TestExceptionNames(t *testing.T) {
	matches := func(e Exception, name, generateName string) bool {
		n, g := e.namePatterns()
		return regexp.MustCompile(n).MatchString(name) || (generateName != "" && regexp.MustCompile(g).MatchString(generateName))
	}
	db := Exception{Workload: "db"}
	for _, name := range []string{"db", "db-7f9c5d8b4c", "db-0", "db-12", "db-28712345"} {
		assert.True(t, matches(db, name, ""), name)
	}
	assert.True(t, matches(db, "db-7f9c5d8b4c-x2k9p", "db-7f9c5d8b4c-"), "a ReplicaSet's pod")
	assert.True(t, matches(db, "db-x2k9p", "db-"), "a DaemonSet's or Job's pod")
	for _, name := range []string{"dbadmin", "db-admin", "db-admin-0", "mydb", "db.backup"} {
		assert.False(t, matches(db, name, name+"-"), name)
	}
	wild := Exception{Workload: "batch-*"}
	assert.True(t, matches(wild, "batch-nightly", ""))
	assert.False(t, matches(wild, "batcher", ""))
	expectValidation(t, &Args{Admission: AdmissionArgs{ExpiryImage: expiryImage, Exceptions: []Exception{{Policy: "kplane-host-path", Namespace: "db",
		Workload: "b*a*", Reason: "r", Owner: "o", Ticket: "t", Expires: "2026-12-31"}}}}, `admission.exceptions[0].workload "b*a*"`)
}

// TestRegistryPrefixes: an entry admits its registry or repository at a path boundary only.
func TestRegistryPrefixes(t *testing.T) {
	assert.Equal(t, []string{"registry.example.com/", "registry.example.com/team/app/", "registry.example.com/team/app:", "registry.example.com/team/app@", "r.example.com/x/"},
		RegistryPrefixes([]string{"registry.example.com", "registry.example.com/team/app", "r.example.com/x/"}))
}

// TestRenderedPolicies pins the CEL every policy renders to (go test -update rewrites it). The
// real API server compiles and enforces these in tests/integration.
func TestRenderedPolicies(t *testing.T) {
	a := &Args{Teams: []Team{{Name: "web", Namespaces: []string{"web", "web-jobs"}}},
		Admission: AdmissionArgs{AllowedRegistries: []string{"registry.example.com/"}}}
	type rendered struct {
		Name, Description string
		Controls          []string
		Validations       [][2]string
	}
	var out []rendered
	for _, p := range a.policies() {
		out = append(out, rendered{Name: p.Name, Description: p.Description, Controls: p.Controls, Validations: p.CEL(rules.Literals)})
	}
	got, err := json.MarshalIndent(out, "", "  ")
	require.NoError(t, err)
	golden := "testdata/policies.golden.json"
	if *update {
		require.NoError(t, os.WriteFile(golden, append(got, '\n'), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -update to create %s", golden)
	assert.JSONEq(t, string(want), string(got))
}
