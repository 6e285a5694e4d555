package report

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
	"github.com/kplane/kplane/policies"
	"github.com/kplane/kplane/policies/pack"
)

func build(t *testing.T, lang string, findings []Finding) *Report {
	p, err := policies.Pack()
	require.NoError(t, err)
	r, err := Build("staging", lang, []*pack.Pack{p}, findings, nil, nil, time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	return r
}

func control(r *Report, fw, id string) Control {
	for _, c := range r.Controls {
		if c.Framework == fw && c.ID == id {
			return c
		}
	}
	return Control{}
}

func TestReport(t *testing.T) {
	findings := []Finding{{Policy: "kplane-no-privileged", Pack: "kplane-kubernetes", Level: "mandatory",
		Resource: "urn:pulumi:staging::kplane::kubernetes:apps/v1:Deployment::agent", Message: "kplane-no-privileged: container app: securityContext.privileged must be false (CIS 5.2.2); fix: set securityContext.privileged to false"}}
	r := build(t, "en", findings)
	assert.Equal(t, 1, r.Mandatory)
	assert.Equal(t, Violated, control(r, "CIS", "5.2.2").Status, "the policy's control is violated")
	assert.Equal(t, Violated, control(r, "KISA", "Master-12").Status, "and the KISA item citing it")
	assert.Equal(t, Pass, control(r, "CIS", "5.2.3").Status, "checked by a policy that found nothing")
	assert.Equal(t, NodeCheck, control(r, "CIS", "1.2.1").Status, "API server flags are node checks")
	assert.Equal(t, Manual, control(r, "KISA", "Worker-07").Status, "patches are attested by people")
	assert.Equal(t, NotCovered, control(r, "CIS", "4.3.1").Status, "kube-proxy: automated in CIS, not checked by kplane")
	total := 0
	for k, n := range r.Summary {
		if strings.HasPrefix(k, "CIS ") {
			total += n
		}
	}
	assert.Equal(t, 131, total, "every CIS control has a status")

	md := r.Markdown()
	assert.Contains(t, md, "| mandatory | `kplane-no-privileged` | `agent` | kplane-no-privileged: container app: securityContext.privileged must be false (CIS 5.2.2).")
	assert.NotContains(t, md, "set securityContext.privileged to false", "the engine's English fix is dropped: the report gives the policy's, once, in its language")
	html, err := r.HTML()
	require.NoError(t, err)
	assert.Contains(t, html, `<tr class="violated"><td>CIS</td><td><b>5.2.2</b>`)
	var back Report
	js, err := r.JSON()
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, r.Mandatory, back.Mandatory)

	ko := build(t, "ko", nil)
	html, err = ko.HTML()
	require.NoError(t, err)
	assert.Contains(t, html, `<html lang="ko">`)
	assert.Contains(t, html, "컴플라이언스 보고서")
	assert.Contains(t, html, "인증되지 않은 API 접근 차단", "KISA items in Korean")
	assert.Contains(t, ko.Markdown(), "위반 사항이 없습니다.")

	_, err = Build("x", "fr", nil, nil, nil, nil, time.Now())
	assert.ErrorContains(t, err, `REPORT_LANG "fr": en or ko`)
}

// TestNodeResults: the node checks' reports turn node-checked controls into pass or violated,
// with the node, the finding and the fix, through to the KISA items.
func TestNodeResults(t *testing.T) {
	node := nodecheck.Report{Node: "cp-1", Results: []nodecheck.Result{
		{ID: "1.2.1", KISA: []string{"Master-01"}, Title: "anonymous requests are refused", Status: nodecheck.Pass},
		{ID: "1.1.12", KISA: []string{"Master-16"}, Title: "etcd data directory is owned by etcd:etcd", Status: nodecheck.Fail,
			Detail: `no "etcd" user on the node`, Fix: "run etcd as its own user"},
	}}
	r, err := Build("prod", "en", nil, nil, nil, []nodecheck.Report{node}, time.Now())
	require.NoError(t, err)
	assert.Equal(t, Pass, control(r, "CIS", "1.2.1").Status)
	assert.Equal(t, Violated, control(r, "CIS", "1.1.12").Status)
	assert.Equal(t, Violated, control(r, "KISA", "Master-16").Status)
	assert.Equal(t, NodeCheck, control(r, "CIS", "1.2.2").Status, "no result yet")
	assert.Equal(t, 1, r.NodeFailures)
	assert.Zero(t, r.Mandatory, "node results do not fail the preview")
	assert.Contains(t, r.Markdown(), "| node check | `node check 1.1.12` | `cp-1` | etcd data directory is owned by etcd:etcd: no \"etcd\" user on the node. run etcd as its own user |")
}

// TestNotApplied: a policy with nothing to judge in the stack does not pass its controls.
func TestNotApplied(t *testing.T) {
	p, err := policies.Pack()
	require.NoError(t, err)
	var applied []string
	for _, pol := range p.Policies {
		if pol.Applies == nil {
			applied = append(applied, pol.Name)
		}
	}
	r, err := Build("dev", "en", []*pack.Pack{p}, nil, applied, nil, time.Now())
	require.NoError(t, err)
	assert.Contains(t, r.NotApplied, "kplane-keycloak-admin-mfa")
	assert.Equal(t, Manual, control(r, "KISA", "CA-03").Status, "MFA: no realm in the stack, not passed")
	assert.Equal(t, Pass, control(r, "CIS", "5.2.2").Status)
	assert.Contains(t, r.Markdown(), "Not applied (the stack declares nothing they judge")
	assert.Contains(t, r.Markdown(), "- `kplane-eks-audit-logs`: the stack declares no EKS clusters (pulumi-aws)", "each entry says why")
	ko, err := Build("dev", "ko", []*pack.Pack{p}, nil, applied, nil, time.Now())
	require.NoError(t, err)
	assert.Contains(t, ko.Markdown(), "- `kplane-keycloak-admin-mfa`: 스택에 선언되지 않음: Keycloak 렐름(kplane:identity)")

	all, err := Build("dev", "en", []*pack.Pack{p}, nil, append(applied, "kplane-keycloak-admin-mfa"), nil, time.Now())
	require.NoError(t, err)
	assert.Equal(t, Pass, control(all, "KISA", "CA-03").Status, "a realm that requires MFA passes it")
}

// TestExceptionsListed: the report lists active exceptions with their days left, soonest first,
// in both languages, and marks the expired ones.
func TestExceptionsListed(t *testing.T) {
	now := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	for lang, words := range map[string][]string{"en": {"## Admission exceptions", "| `kplane-host-path` db/* | team-db | SEC-2 | backup agent | 2026-12-20 | 14 |", "expired (-5)"},
		"ko": {"## 어드미션 예외", "만료 (-5)"}} {
		r, err := Build("prod", lang, nil, nil, nil, nil, now)
		require.NoError(t, err)
		r.WithExceptions([]hardenedcluster.Exception{
			{Policy: "kplane-host-path", Namespace: "db", Reason: "backup agent", Owner: "team-db", Ticket: "SEC-2", Expires: "2026-12-20"},
			{Policy: "kplane-read-only-root", Namespace: "web", Workload: "legacy", Reason: "tmp", Owner: "web", Ticket: "SEC-1", Expires: "2026-12-01"},
		}, now)
		require.Len(t, r.Exceptions, 2)
		assert.Equal(t, -5, r.Exceptions[0].DaysLeft, "the expired one first")
		md := r.Markdown()
		for _, w := range words {
			assert.Contains(t, md, w, lang)
		}
		html, err := r.HTML()
		require.NoError(t, err)
		assert.Contains(t, html, "SEC-2")
	}
}
