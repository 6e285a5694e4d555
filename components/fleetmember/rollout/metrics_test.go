package rollout

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kplane/kplane/components/backup/drill"
	"github.com/kplane/kplane/components/wellknown"
)

// scrape is the exposition at the handler's path, parsed.
func scrape(t *testing.T, h http.Handler) map[string][]string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, MetricsPath, nil))
	require.Equal(t, http.StatusOK, rec.Code)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	require.NoError(t, err, "the exposition parses")
	out := map[string][]string{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[name] = append(out[name], strings.Join(labels, ",")+" "+model.SampleValue(v).String())
		}
	}
	return out
}

// TestMetrics: the observation as client_golang exposes it; an unreachable member reports up 0
// and nothing it cannot know.
func TestMetrics(t *testing.T) {
	expiry := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	m := NewMetrics()
	m.Update([]Health{
		{Cluster: "seoul", Environment: "prod", Reachable: true, Healthy: true, Version: "v1.37.2", Nodes: 2, NodesReady: 2, AddOns: 3, AddOnsOK: 3,
			CertificateExpiry: expiry, Admission: Admission{Enforcing: 4, Auditing: 1},
			Backups: []Backup{{Schedule: "velero/kplane-teams", LastSuccess: expiry.Add(-time.Hour), RPOSeconds: 86400}}},
		{Cluster: "busan", Environment: "prod", Reason: "API server not ready: connection refused"},
	}, []AppStatus{{Name: "kplane-platform-prod-seoul", Cluster: "seoul", Sync: "OutOfSync", Health: "Healthy"}})
	got := scrape(t, m.Handler())
	assert.ElementsMatch(t, []string{"cluster=busan,environment=prod 0", "cluster=seoul,environment=prod 1"}, got["kplane_fleet_cluster_up"])
	assert.Equal(t, []string{"cluster=seoul,environment=prod 1803859200"}, got["kplane_fleet_cluster_certificate_expiry_timestamp_seconds"])
	assert.ElementsMatch(t, []string{"cluster=seoul,enforcement=deny,environment=prod 4", "cluster=seoul,enforcement=audit,environment=prod 1"}, got["kplane_fleet_admission_policies"])
	assert.Equal(t, []string{"cluster=seoul,environment=prod,schedule=velero/kplane-teams 86400"}, got["kplane_fleet_backup_rpo_seconds"])
	assert.Equal(t, []string{"cluster=seoul,environment=prod,schedule=velero/kplane-teams 1803855600"}, got["kplane_fleet_backup_last_success_timestamp_seconds"])
	assert.Equal(t, []string{"application=kplane-platform-prod-seoul,cluster=seoul 0"}, got["kplane_fleet_application_synced"])
	assert.Equal(t, []string{"application=kplane-platform-prod-seoul,cluster=seoul 1"}, got["kplane_fleet_application_healthy"])
	assert.Equal(t, []string{"cluster=seoul,environment=prod 2"}, got["kplane_fleet_cluster_nodes_ready"], "busan's nodes are unknown, not 0")
	assert.Equal(t, []string{" 1"}, got["kplane_fleet_clusters_healthy"])
	assert.ElementsMatch(t, []string{"cluster=seoul,result=healthy 1", "cluster=busan,result=unhealthy 1"}, got["kplane_fleet_health_checks_total"])
	assert.NotEmpty(t, got["go_goroutines"], "the process's own metrics too")
}

// TestMetricsConcurrent: scrapes while the watch loop updates (run with -race).
func TestMetricsConcurrent(t *testing.T) {
	m := NewMetrics()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() { defer wg.Done(); m.Update([]Health{{Cluster: "c", Healthy: i%2 == 0, Reachable: true}}, nil) }()
		go func() { defer wg.Done(); scrape(t, m.Handler()) }()
	}
	wg.Wait()
}

// TestMetricsEndpointAttacked: only GET/HEAD of /metrics; other paths, traversal, methods and
// oversized headers are refused by the real server.
func TestMetricsEndpointAttacked(t *testing.T) {
	m := NewMetrics()
	srv, err := m.Serve("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	h := m.Handler()
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/metrics/../../etc/passwd", http.StatusNotFound},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound},
		{http.MethodPost, MetricsPath, http.StatusMethodNotAllowed},
		{http.MethodDelete, MetricsPath, http.StatusMethodNotAllowed},
		{http.MethodHead, MetricsPath, http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		assert.Equal(t, c.want, rec.Code, "%s %s", c.method, c.path)
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+srv.Addr+MetricsPath, nil)
	require.NoError(t, err)
	req.Header.Set("X-Filler", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	resp, err = http.Get("http://" + srv.Addr + MetricsPath)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = m.Serve(srv.Addr)
	require.Error(t, err, "an address in use is an error, not a silent goroutine")
}

// TestDrills: the drills read from their evidence ConfigMaps and exposed. One that never ran
// reports when it was scheduled and its interval, nothing else; evidence that does not parse
// is a failed drill; a ConfigMap without the label is not a drill's.
func TestDrills(t *testing.T) {
	scheduled := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	finished := time.Date(2026, 12, 6, 4, 1, 0, 0, time.UTC)
	ev, err := json.Marshal(drill.Evidence{Namespace: "shop", Finished: finished, Passed: true, RPOSeconds: 86400, RPOTargetSeconds: 90000, RTOSeconds: 42})
	require.NoError(t, err)
	cm := func(ns string, data map[string]string, labelled bool) *corev1.ConfigMap {
		c := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: drill.EvidenceConfigMap(ns), Namespace: "velero", CreationTimestamp: metav1.NewTime(scheduled),
			Annotations: map[string]string{wellknown.DrillScheduleAnnotation: "0 4 * * 0"}}, Data: data}
		if labelled {
			c.Labels = map[string]string{wellknown.DrillOfLabel: ns}
		}
		return c
	}
	cs := fake.NewClientset(cm("shop", map[string]string{drill.EvidenceKey: string(ev)}, true), cm("web", nil, true),
		cm("ledger", map[string]string{drill.EvidenceKey: "{not json"}, true), cm("other", map[string]string{drill.EvidenceKey: string(ev)}, false))
	got := drills(context.Background(), cs)
	week := 7 * 24 * 3600.0
	assert.Equal(t, []Drill{
		{Namespace: "ledger", Last: scheduled, Ran: true, IntervalSeconds: week},
		{Namespace: "shop", Last: finished, Ran: true, IntervalSeconds: week, Passed: true, RPOSeconds: 86400, RPOTargetSeconds: 90000, RTOSeconds: 42},
		{Namespace: "web", Last: scheduled, IntervalSeconds: week},
	}, got)

	m := NewMetrics()
	m.Update([]Health{{Cluster: "seoul", Environment: "prod", Reachable: true, Drills: got}}, nil)
	exposed := scrape(t, m.Handler())
	at := func(ns, v string) string { return "cluster=seoul,environment=prod,namespace=" + ns + " " + v }
	assert.ElementsMatch(t, []string{at("ledger", "1796083200"), at("shop", "1796529660"), at("web", "1796083200")}, exposed["kplane_fleet_restore_drill_timestamp_seconds"])
	assert.ElementsMatch(t, []string{at("ledger", "0"), at("shop", "1")}, exposed["kplane_fleet_restore_drill_passed"], "web has not run")
	assert.Equal(t, []string{at("shop", "90000")}, exposed["kplane_fleet_restore_drill_rpo_target_seconds"])
	assert.Empty(t, exposed["kplane_fleet_restore_drill_rto_target_seconds"], "no RTO target: none exposed")
	assert.Len(t, exposed["kplane_fleet_restore_drill_interval_seconds"], 3)
}
