package hardenedcluster

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// compliant evaluates the vulnerability policy as policy-controller does (cosign's
// pkg/cosign/rego.ValidateJSONWithModuleInput: query isCompliant = data.sigstore.isCompliant,
// Rego v0 parser, JSON numbers kept) on an attestation statement.
func compliant(t *testing.T, policy string, statement map[string]any) bool {
	t.Helper()
	r := rego.New(rego.Query("isCompliant = data.sigstore.isCompliant"), rego.Module("sigstore.rego", policy), rego.SetRegoVersion(ast.RegoV0))
	q, err := r.PrepareForEval(context.Background())
	require.NoError(t, err, "the policy compiles under policy-controller's evaluator")
	raw, err := json.Marshal(statement)
	require.NoError(t, err)
	var input any
	require.NoError(t, json.Unmarshal(raw, &input))
	rs, err := q.Eval(context.Background(), rego.EvalInput(input))
	require.NoError(t, err)
	require.Len(t, rs, 1)
	return rs[0].Bindings["isCompliant"] == true
}

// scan is a cosign vuln attestation of a Trivy scan, finished an hour ago, with findings of
// these severities.
func scan(severities ...string) map[string]any {
	return scanAt(time.Now().Add(-time.Hour), severities...)
}

// scanAt is scan, finished at finished.
func scanAt(finished time.Time, severities ...string) map[string]any {
	var vulns []any
	for i, s := range severities {
		vulns = append(vulns, map[string]any{"VulnerabilityID": "CVE-2026-" + string(rune('0'+i)), "Severity": s})
	}
	return map[string]any{
		"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1",
		"predicate": map[string]any{"scanner": map[string]any{"uri": "pkg:github/aquasecurity/trivy@v0.74.0", "version": "0.74.0",
			"result": map[string]any{"SchemaVersion": 2, "Results": []any{map[string]any{"Target": "app", "Vulnerabilities": vulns}}}},
			"metadata": map[string]any{"scanStartedOn": finished.Add(-time.Second).UTC().Format(time.RFC3339), "scanFinishedOn": finished.UTC().Format(time.RFC3339)}},
	}
}

func TestVulnerabilityPolicy(t *testing.T) {
	high := vulnPolicy("HIGH", DefaultMaxScanAge)
	assert.True(t, compliant(t, high, scan()), "a clean scan passes")
	assert.True(t, compliant(t, high, scan("LOW", "MEDIUM")), "findings below the limit pass")
	assert.False(t, compliant(t, high, scan("LOW", "HIGH")), "a HIGH finding blocks at limit HIGH")
	assert.False(t, compliant(t, high, scan("CRITICAL")))
	assert.True(t, compliant(t, vulnPolicy("CRITICAL", DefaultMaxScanAge), scan("HIGH")), "HIGH passes at limit CRITICAL")
	assert.True(t, compliant(t, high, scanAt(time.Now().Add(-DefaultMaxScanAge+time.Minute))), "a scan just within the age passes")
	assert.False(t, compliant(t, high, scanAt(time.Now().Add(-DefaultMaxScanAge-time.Minute))), "a clean scan older than the age is refused")
	assert.False(t, compliant(t, vulnPolicy("HIGH", 24*time.Hour), scanAt(time.Now().Add(-25*time.Hour))), "the age is the argument's")
	undated := scan()
	delete(undated["predicate"].(map[string]any), "metadata")
	assert.False(t, compliant(t, high, undated), "a scan without its time is refused")
	other := scan()
	other["predicateType"] = "https://slsa.dev/provenance/v0.2"
	assert.False(t, compliant(t, high, other), "only a vulnerability attestation counts")
}
