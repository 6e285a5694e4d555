package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kplane/kplane/components/backup/drill"
	"github.com/kplane/kplane/components/fleetmember/monitoring"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/tests/testbed"
)

// TestFleetMonitoring: one view of the fleet. kplane-fleet's health watch serves its metrics
// (client_golang); a real Prometheus, configured by `kplane-fleet prometheus`, scrapes it,
// federates a member's own Prometheus and evaluates kplane's fleet rules: a production member
// whose admission policies only audit and whose backup is older than its schedule's RPO alerts;
// restore drills that failed, missed their RPO and RTO, or stopped running alert, each by its
// namespace; a stopped member's alert goes from pending to firing within the rule's `for`; every panel of
// the fleet's dashboard is a query the real Prometheus answers with data.
func TestFleetMonitoring(t *testing.T) {
	integration(t)
	clusters := testbed.StartN(t, 2, testbed.Options{Nodes: 1})
	seoul, busan := clusters[0], clusters[1]
	auditingAndLateBackup(t, seoul)
	drillEvidence(t, seoul)

	// busan's own Prometheus (a recording rule of its own), federated by the management one.
	member := testbed.StartPrometheus(t, t.TempDir(), map[string][]byte{
		"prometheus.yml": []byte("global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [rules.yml]\n" +
			"scrape_configs: [{job_name: member-prometheus, static_configs: [{targets: ['{{self}}']}]}]\n"),
		"rules.yml": []byte("groups: [{name: member, rules: [{record: 'job:up:sum', expr: 'sum by (job) (up)'}]}]\n"),
	})
	envs, state := t.TempDir(), t.TempDir()
	writeFleetEnv(t, envs, "test", map[string]any{"environment": "prod", "management": seoul.Kubeconfig,
		"platform": map[string]any{"repoURL": "https://git.example.com/platform.git", "revision": "v1.4.0"},
		"clusters": []map[string]any{{"name": "seoul", "kubeconfig": seoul.Kubeconfig}, {"name": "busan", "kubeconfig": busan.Kubeconfig, "prometheus": member.URL}}})
	bin, fleet := fleetCLI(t, t.TempDir(), envs, state)
	port, err := testbed.FreePorts(1)
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	watch := exec.CommandContext(t.Context(), bin, "health", "--env", "test", "--environments", envs, "--state", state, "--watch", "1s", "--metrics", addr, "--json")
	watchLog, err := os.Create(filepath.Join(t.TempDir(), "watch.log"))
	require.NoError(t, err)
	watch.Stdout, watch.Stderr = watchLog, watchLog
	require.NoError(t, watch.Start())
	t.Cleanup(func() { _ = watch.Process.Kill(); _ = watch.Wait() })

	dir := t.TempDir()
	out, err := fleet("prometheus", "--out", dir, "--metrics", addr, "--interval", "1s")
	require.NoError(t, err, out)
	assert.Contains(t, out, "1 members federated")
	// kplane's rules, with the test bed's `for` for the alerts it waits for.
	rules, err := monitoring.Rules(map[string]time.Duration{"KplaneFleetMemberUnreachable": 5 * time.Second,
		"KplaneFleetPolicyAuditInProd": time.Second, "KplaneFleetBackupOlderThanRPO": time.Second, "KplaneFleetRestoreDrillOverdue": time.Second})
	require.NoError(t, err)
	prom := testbed.StartPrometheus(t, dir, map[string][]byte{"kplane-fleet.rules.yaml": rules})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus log:\n%s", prom.Logs(30))
		}
	})
	query := func(expr string) []testbed.Sample {
		s, err := prom.Query(expr)
		require.NoError(t, err)
		return s
	}
	eventually := func(what, expr string) {
		t.Helper()
		require.Eventually(t, func() bool { return len(query(expr)) > 0 }, 90*time.Second, 500*time.Millisecond, "%s (%s)", what, expr)
	}
	eventually("both members up", `count(kplane_fleet_cluster_up == 1) == 2`)
	eventually("busan's Prometheus federated under its name", `job:up:sum{cluster="busan",job="member-prometheus"}`)
	eventually("seoul's admission policies only audit in prod", `ALERTS{alertname="KplaneFleetPolicyAuditInProd",cluster="seoul",alertstate="firing"}`)
	eventually("seoul's backup older than its RPO", `ALERTS{alertname="KplaneFleetBackupOlderThanRPO",cluster="seoul",schedule="velero/kplane-teams",alertstate="firing"}`)
	rpo := query(`kplane_fleet_backup_rpo_seconds{cluster="seoul"}`)
	require.Len(t, rpo, 1)
	assert.Equal(t, "86400", rpo[0].Value[1], "a daily schedule's RPO is a day")
	for alert, ns := range map[string]string{"KplaneFleetRestoreDrillFailed": "shop", "KplaneFleetRestoreDrillMissedRPO": "web",
		"KplaneFleetRestoreDrillMissedRTO": "web", "KplaneFleetRestoreDrillOverdue": "ledger"} {
		eventually(alert+" of "+ns, `ALERTS{alertname="`+alert+`",cluster="seoul",namespace="`+ns+`",alertstate="firing"}`)
	}
	assert.Len(t, query(`ALERTS{alertname=~"KplaneFleetRestoreDrill.*"}`), 4, "nothing else: ledger's old drill passed within its targets")
	assert.Empty(t, query(`ALERTS{alertname="KplaneFleetPolicyAuditInProd",cluster="busan"}`), "busan has no auditing policy")
	assert.Empty(t, query(`ALERTS{alertname="KplaneFleetMemberUnreachable"}`))

	// A stopped member: pending, then firing once the rule's `for` (5 s here) has passed.
	require.NoError(t, busan.Stop())
	stopped := time.Now()
	var pending, firing time.Duration
	require.Eventually(t, func() bool {
		for _, s := range query(`ALERTS{alertname="KplaneFleetMemberUnreachable",cluster="busan"}`) {
			switch {
			case s.Metric["alertstate"] == "pending" && pending == 0:
				pending = time.Since(stopped)
			case s.Metric["alertstate"] == "firing":
				firing = time.Since(stopped)
			}
		}
		return firing > 0
	}, 90*time.Second, 250*time.Millisecond, "busan's unreachable alert fires")
	t.Logf("busan stopped: alert pending after %.1f s, firing after %.1f s", pending.Seconds(), firing.Seconds())
	assert.NotZero(t, pending, "pending before firing")
	assert.GreaterOrEqual(t, firing-pending, 4*time.Second, "firing only once the rule's for has passed")
	eventually("checks of busan failing", `rate(kplane_fleet_health_checks_total{cluster="busan",result="unhealthy"}[5m]) > 0`)

	// Every panel of the fleet's dashboard: a query the real Prometheus answers, with data.
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(monitoring.Dashboard, &dash))
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			expr := strings.ReplaceAll(target.Expr, "$environment", ".*")
			assert.NotEmpty(t, query(expr), "panel %q: %s", p.Title, expr)
		}
	}
}

// auditingAndLateBackup gives c one kplane admission policy binding that only warns, and a
// daily Velero schedule whose last completed backup is three days old.
func auditingAndLateBackup(t *testing.T, c *testbed.Cluster) {
	ctx := context.Background()
	cs, err := c.Clientset()
	require.NoError(t, err)
	labels := map[string]string{wellknown.ManagedByLabel: wellknown.ManagedBy}
	_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "kplane-no-privileged", Labels: labels},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
				Operations: []admissionv1.OperationType{admissionv1.Create},
				Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}}}},
			Validations: []admissionv1.Validation{{Expression: "object.spec.containers.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged)"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kplane-no-privileged", Labels: labels},
		Spec:       admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "kplane-no-privileged", ValidationActions: []admissionv1.ValidationAction{admissionv1.Warn, admissionv1.Audit}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	require.NoError(t, testbed.InstallVelero(ctx, c))
	dyn, err := c.Dynamic()
	require.NoError(t, err)
	velero := func(resource string) dynamic.ResourceInterface {
		return dyn.Resource(schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: resource}).Namespace("velero")
	}
	_, err = velero("schedules").Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "velero.io/v1", "kind": "Schedule",
		"metadata": map[string]any{"name": "kplane-teams"}, "spec": map[string]any{"schedule": "0 2 * * *", "template": map[string]any{"ttl": "720h0m0s"}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	done := time.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)
	backup := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "velero.io/v1", "kind": "Backup",
		"metadata": map[string]any{"name": "kplane-teams-20261204020000", "labels": map[string]any{"velero.io/schedule-name": "kplane-teams"}},
		"spec":     map[string]any{"ttl": "720h0m0s"}, "status": map[string]any{"phase": "Completed", "completionTimestamp": done}}}
	created, err := velero("backups").Create(ctx, backup, metav1.CreateOptions{})
	require.NoError(t, err)
	if phase, _, _ := unstructured.NestedString(created.Object, "status", "phase"); phase != "Completed" { // a status subresource
		created.Object["status"] = backup.Object["status"]
		_, err = velero("backups").UpdateStatus(ctx, created, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
}

// drillEvidence gives c the evidence ConfigMaps of three weekly restore drills, as the drill
// keeps them: shop's failed, web's passed but missed its RPO (two days uncovered, 25 h
// promised) and RTO, ledger's passed within its targets three weeks ago and not since.
func drillEvidence(t *testing.T, c *testbed.Cluster) {
	cs, err := c.Clientset()
	require.NoError(t, err)
	now := time.Now().UTC()
	for _, ev := range []drill.Evidence{
		{Backup: "kplane-teams-1", Namespace: "shop", Finished: now, Problems: []string{"Secret/db: data differs"}},
		{Backup: "kplane-teams-2", Namespace: "web", Finished: now, Passed: true, RPOSeconds: 172800, RPOTargetSeconds: 90000, RTOSeconds: 900, RTOTargetSeconds: 600},
		{Backup: "kplane-teams-3", Namespace: "ledger", Finished: now.Add(-21 * 24 * time.Hour), Passed: true, RPOSeconds: 86400, RPOTargetSeconds: 90000, RTOSeconds: 30, RTOTargetSeconds: 600},
	} {
		raw, err := json.Marshal(ev)
		require.NoError(t, err)
		_, err = cs.CoreV1().ConfigMaps("velero").Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: drill.EvidenceConfigMap(ev.Namespace),
			Labels: map[string]string{wellknown.DrillOfLabel: ev.Namespace}, Annotations: map[string]string{wellknown.DrillScheduleAnnotation: "0 4 * * 0"}},
			Data: map[string]string{drill.EvidenceKey: string(raw)}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
}
