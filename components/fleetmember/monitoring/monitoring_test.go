package monitoring

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kplane/kplane/components/fleetmember/rollout"
)

// promtool runs Prometheus's promtool (make tools installs it) in dir.
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool is not on PATH: run `make tools` (Debian's prometheus package)")
	}
	cmd := exec.Command("promtool", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// TestRules: the rules pass `promtool check rules` and their unit tests (testdata), and so do
// the rules with a test bed's shorter `for`.
func TestRules(t *testing.T) {
	assert.Contains(t, promtool(t, ".", "check", "rules", "rules.yaml"), "SUCCESS: 17 rules found")
	assert.Contains(t, promtool(t, "testdata", "test", "rules", "rules_test.yaml"), "SUCCESS")
	short, err := Rules(map[string]time.Duration{"KplaneFleetMemberUnreachable": 5 * time.Second})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(path, short, 0o600))
	promtool(t, ".", "check", "rules", path)
	assert.Contains(t, string(short), "for: 5s")
	_, err = Rules(map[string]time.Duration{"KplaneFleetMemberGone": time.Second})
	assert.ErrorContains(t, err, `no alert "KplaneFleetMemberGone"`)
}

// exposed are the metric names kplane-fleet exposes for a fully observed member.
func exposed(t *testing.T) map[string]bool {
	m := rollout.NewMetrics()
	m.Update([]rollout.Health{{Cluster: "seoul", Environment: "prod", Reachable: true, Healthy: true, Version: "v1.37.2", CertificateExpiry: time.Now(),
		Backups: []rollout.Backup{{Schedule: "velero/kplane-teams"}},
		Drills:  []rollout.Drill{{Namespace: "shop", Ran: true, IntervalSeconds: 604800, RPOTargetSeconds: 90000, RTOTargetSeconds: 600}}}},
		[]rollout.AppStatus{{Name: "a", Cluster: "seoul"}})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", rollout.MetricsPath, nil))
	names := map[string]bool{"ALERTS": true, "up": true}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names[strings.Fields(name)[0]] = true
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\b(kplane_fleet[a-z_:]*|ALERTS|up)\b`)

// TestEveryQueryHasItsMetrics: every metric the rules and the dashboard's panels query is one
// kplane-fleet exposes or a rule records; every panel has a query.
func TestEveryQueryHasItsMetrics(t *testing.T) {
	names := exposed(t)
	var doc struct {
		Groups []struct {
			Rules []struct{ Record, Alert, Expr string }
		}
	}
	require.NoError(t, yaml.Unmarshal(rules, &doc))
	var exprs []string
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				names[r.Record] = true
			}
			exprs = append(exprs, r.Expr)
		}
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(Dashboard, &dash))
	require.NotEmpty(t, dash.Panels)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, target := range p.Targets {
			exprs = append(exprs, target.Expr)
		}
	}
	for _, e := range exprs {
		found := metricName.FindAllString(e, -1)
		assert.NotEmpty(t, found, e)
		for _, n := range found {
			assert.True(t, names[n], "%q queries %s, which nothing exposes or records", e, n)
		}
	}
	assert.True(t, slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, "kplane_fleet_backup_rpo_seconds") }))
}

// TestPrometheusConfig: the management Prometheus's configuration passes `promtool check
// config`; a member's bad URL is refused naming it.
func TestPrometheusConfig(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kplane-fleet.rules.yaml"), rules, 0o600))
	cfg, err := PrometheusConfig(Options{Fleet: "127.0.0.1:9100", RuleFiles: []string{"kplane-fleet.rules.yaml"},
		Members: []Member{{Cluster: "seoul", Federate: "https://prometheus.seoul.example.com/"}, {Cluster: "busan", Federate: "http://10.0.0.2:9090/prom"}}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), cfg, 0o600))
	assert.Contains(t, promtool(t, dir, "check", "config", "prometheus.yml"), "SUCCESS")
	s := string(cfg)
	assert.Contains(t, s, "metrics_path: /prom/federate")
	assert.Contains(t, s, "metrics_path: /federate")
	assert.Less(t, strings.Index(s, "federate-busan"), strings.Index(s, "federate-seoul"), "members sorted")
	_, err = PrometheusConfig(Options{Fleet: "127.0.0.1:9100", Members: []Member{{Cluster: "jeju", Federate: "prometheus.jeju:9090"}}})
	assert.ErrorContains(t, err, `cluster jeju: prometheus "prometheus.jeju:9090"`)
}
