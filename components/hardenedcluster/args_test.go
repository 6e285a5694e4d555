package hardenedcluster

import (
	"testing"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validArgs() Args {
	return Args{
		Teams: []Team{{Name: "payments", Namespaces: []string{"payments"}}},
		Services: []Service{{Name: "ledger", Namespace: "payments",
			Rules: []Rule{{Resources: []string{"configmaps"}, Verbs: []string{"get"}}}}},
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Args)
		want   string // substring of the error; "" = valid
	}{
		{"zero value is valid", func(a *Args) { *a = Args{} }, ""},
		{"valid", func(a *Args) {}, ""},
		{"bad team name", func(a *Args) { a.Teams[0].Name = "Payments" }, `teams[0].name "Payments": must be a DNS-1123 label`},
		{"duplicate team", func(a *Args) { a.Teams = append(a.Teams, Team{Name: "payments", Namespaces: []string{"x"}}) }, `teams[1].name "payments": declared twice`},
		{"team without namespace", func(a *Args) { a.Teams[0].Namespaces = nil }, "teams[0].namespaces: required; team \"payments\" owns no namespace"},
		{"privileged refused", func(a *Args) { a.Teams[0].PodSecurity = "privileged" }, `teams[0].podSecurity "privileged": refused`},
		{"unknown level", func(a *Args) { a.Teams[0].PodSecurity = "strict" }, `teams[0].podSecurity "strict"`},
		{"system namespace", func(a *Args) { a.Teams[0].Namespaces = []string{"kube-system"} }, "system namespaces cannot be team namespaces"},
		{"namespace owned twice", func(a *Args) {
			a.Teams = append(a.Teams, Team{Name: "web", Namespaces: []string{"payments"}})
		}, `teams[1].namespaces[0] "payments": already owned by team "payments"`},
		{"service in unknown namespace", func(a *Args) { a.Services[0].Namespace = "web" }, `services[0].namespace "web": not a team namespace; add it to a team's namespaces (known: payments)`},
		{"wildcard verb", func(a *Args) { a.Services[0].Rules[0].Verbs = []string{"*"} }, `services[0].rules[0] "*": wildcard refused (CIS 5.1.3)`},
		{"wildcard resource in cluster rule", func(a *Args) {
			a.Services[0].ClusterRules = []Rule{{Resources: []string{"*"}, Verbs: []string{"get"}}}
		}, `services[0].clusterRules[0] "*": wildcard`},
		{"wildcard with a reason", func(a *Args) {
			a.Services[0].Rules[0].Verbs = []string{"*"}
			a.Services[0].WildcardReason = "operator manages arbitrary CRs"
		}, ""},
		{"escalate even with a wildcard reason", func(a *Args) {
			a.Services[0].Rules[0].Verbs = []string{"escalate"}
			a.Services[0].WildcardReason = "x"
		}, `verbs[0] "escalate": lets a service escalate`},
		{"escalate", func(a *Args) { a.Services[0].Rules[0].Verbs = []string{"escalate"} }, `verbs[0] "escalate": lets a service escalate its own privileges (CIS 5.1.8)`},
		{"nodes/proxy", func(a *Args) { a.Services[0].Rules[0].Resources = []string{"nodes/proxy"} }, "nodes/proxy"},
		{"empty rule", func(a *Args) { a.Services[0].Rules[0].Verbs = nil }, "services[0].rules[0]: required; a rule needs resources and verbs"},
		{"duplicate service", func(a *Args) { a.Services = append(a.Services, a.Services[0]) }, `services[1].name "ledger": declared twice in namespace`},
		{"bad PSS version", func(a *Args) { a.PodSecurityVersion = "1.37" }, `podSecurityVersion "1.37"`},
		{"pinned PSS version", func(a *Args) { a.PodSecurityVersion = "v1.37" }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := validArgs()
			tc.mutate(&a)
			err := a.Validate()
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// expectValidation checks that Validate passes (want == "") or fails with an error containing want.
func expectValidation(t *testing.T, a *Args, want string) {
	t.Helper()
	err := a.Validate()
	if want == "" {
		assert.NoError(t, err)
		return
	}
	assert.ErrorContains(t, err, want)
}

func TestNamespaceLabels(t *testing.T) {
	got := NamespaceLabels(Team{Name: "web"}, "v1.37")
	assert.Equal(t, map[string]string{
		wellknown.TeamLabel:                          "web",
		wellknown.ManagedByLabel:                     wellknown.ManagedBy,
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "v1.37",
		"pod-security.kubernetes.io/audit":           "restricted",
		"pod-security.kubernetes.io/audit-version":   "v1.37",
		"pod-security.kubernetes.io/warn":            "restricted",
		"pod-security.kubernetes.io/warn-version":    "v1.37",
	}, got)

	baseline := NamespaceLabels(Team{Name: "legacy", PodSecurity: "baseline"}, "latest")
	assert.Equal(t, "baseline", baseline["pod-security.kubernetes.io/enforce"])
	assert.Equal(t, "restricted", baseline["pod-security.kubernetes.io/audit"], "audit stays at restricted to show the gap")
	assert.Equal(t, "restricted", baseline["pod-security.kubernetes.io/warn"])
}
