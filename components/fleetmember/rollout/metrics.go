package rollout

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the fleet's health as Prometheus metrics (prometheus/client_golang): the last
// observation of every member, and each expected Argo CD Application's state. Update and
// scrapes may run concurrently.
type Metrics struct {
	registry *prometheus.Registry
	checks   *prometheus.CounterVec

	mu     sync.Mutex
	health []Health
	apps   []AppStatus
}

// MetricsPath is where Handler serves the metrics.
const MetricsPath = "/metrics"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("kplane_fleet_"+name, help, labels, nil)
}

// The fleet's metrics (docs/components/fleet.md, the rules and the dashboard in
// components/fleetmember/monitoring use these names).
var (
	descUp        = desc("cluster_up", "1 when the member's API server answers ready.", "cluster", "environment")
	descHealthy   = desc("cluster_healthy", "1 when the member's API server, nodes and add-ons are healthy.", "cluster", "environment")
	descInfo      = desc("cluster_info", "The member's Kubernetes version (value 1).", "cluster", "environment", "version")
	descNodes     = desc("cluster_nodes", "Nodes of the member.", "cluster", "environment")
	descReady     = desc("cluster_nodes_ready", "Nodes Ready.", "cluster", "environment")
	descAddOns    = desc("cluster_addons", "Add-on Deployments of the platform namespaces.", "cluster", "environment")
	descAvailable = desc("cluster_addons_available", "Add-on Deployments available.", "cluster", "environment")
	descDuration  = desc("health_check_duration_seconds", "Duration of the last health check.", "cluster", "environment")
	descChecked   = desc("health_check_timestamp_seconds", "When the last health check ran (Unix time).", "cluster", "environment")
	descCertExp   = desc("cluster_certificate_expiry_timestamp_seconds", "When the API server's serving certificate expires (Unix time).", "cluster", "environment")
	descPolicies  = desc("admission_policies", "kplane's admission policy bindings and Gatekeeper constraints by enforcement (deny, or audit: warn/audit/dryrun).", "cluster", "environment", "enforcement")
	descBackup    = desc("backup_last_success_timestamp_seconds", "Completion time of the schedule's newest Completed Velero backup (Unix time; 0: none).", "cluster", "environment", "schedule")
	descRPO       = desc("backup_rpo_seconds", "The schedule's recovery point objective: the longest gap between its runs, or its kplane.io/rpo.", "cluster", "environment", "schedule")
	descDrillLast = desc("restore_drill_timestamp_seconds", "When the namespace's last restore drill finished (Unix time); while none has run, when the drill was scheduled.", "cluster", "environment", "namespace")
	descDrillEach = desc("restore_drill_interval_seconds", "The longest gap between the drill's scheduled runs.", "cluster", "environment", "namespace")
	descDrillOK   = desc("restore_drill_passed", "1 when the last drill restored the backup as it was taken.", "cluster", "environment", "namespace")
	descDrillRPO  = desc("restore_drill_rpo_seconds", "The last drill's RPO: the longest stretch its schedule's backups left uncovered over the drill's window.", "cluster", "environment", "namespace")
	descDrillRPOT = desc("restore_drill_rpo_target_seconds", "The RPO target of the drilled backup's schedule.", "cluster", "environment", "namespace")
	descDrillRTO  = desc("restore_drill_rto_seconds", "The last drill's RTO: how long its restore took.", "cluster", "environment", "namespace")
	descDrillRTOT = desc("restore_drill_rto_target_seconds", "The RTO target of the drilled backup's schedule.", "cluster", "environment", "namespace")
	descSynced    = desc("application_synced", "1 when the member's Argo CD Application is Synced.", "cluster", "application")
	descAppHealth = desc("application_healthy", "1 when the member's Argo CD Application is Healthy.", "cluster", "application")
	descMembers   = desc("clusters", "Members of the fleet.")
	descGreen     = desc("clusters_healthy", "Healthy members of the fleet.")
)

// NewMetrics is an empty registry of the fleet's metrics (and the process's own).
func NewMetrics() *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry(), checks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kplane_fleet_health_checks_total", Help: "Health checks run, by cluster and result (healthy, unhealthy).",
	}, []string{"cluster", "result"})}
	m.registry.MustRegister(m, m.checks, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Update replaces the observation the metrics report.
func (m *Metrics) Update(health []Health, apps []AppStatus) {
	for _, h := range health {
		result := "healthy"
		if !h.Healthy {
			result = "unhealthy"
		}
		m.checks.WithLabelValues(h.Cluster, result).Inc()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.health, m.apps = append([]Health(nil), health...), append([]AppStatus(nil), apps...)
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descHealthy, descInfo, descNodes, descReady, descAddOns, descAvailable, descDuration,
		descChecked, descCertExp, descPolicies, descBackup, descRPO, descDrillLast, descDrillEach, descDrillOK, descDrillRPO, descDrillRPOT,
		descDrillRTO, descDrillRTOT, descSynced, descAppHealth, descMembers, descGreen} {
		ch <- d
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}

// drillGauges: a drill's time and interval; once it ran, its result and RPO/RTO, and the
// targets it has.
func drillGauges(gauge func(*prometheus.Desc, float64, ...string), d Drill, labels ...string) {
	labels = append(labels, d.Namespace)
	gauge(descDrillLast, unix(d.Last), labels...)
	if d.IntervalSeconds > 0 {
		gauge(descDrillEach, d.IntervalSeconds, labels...)
	}
	if !d.Ran {
		return
	}
	gauge(descDrillOK, bool01(d.Passed), labels...)
	gauge(descDrillRPO, d.RPOSeconds, labels...)
	gauge(descDrillRTO, d.RTOSeconds, labels...)
	if d.RPOTargetSeconds > 0 {
		gauge(descDrillRPOT, d.RPOTargetSeconds, labels...)
	}
	if d.RTOTargetSeconds > 0 {
		gauge(descDrillRTOT, d.RTOTargetSeconds, labels...)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	health, apps := m.health, m.apps
	m.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, h := range health {
		gauge(descUp, bool01(h.Reachable), h.Cluster, h.Environment)
		gauge(descHealthy, bool01(h.Healthy), h.Cluster, h.Environment)
		gauge(descDuration, h.Seconds, h.Cluster, h.Environment)
		gauge(descChecked, unix(h.Checked), h.Cluster, h.Environment)
		if !h.Reachable { // what it last said is unknown now, not zero
			continue
		}
		if h.Version != "" {
			gauge(descInfo, 1, h.Cluster, h.Environment, h.Version)
		}
		gauge(descNodes, float64(h.Nodes), h.Cluster, h.Environment)
		gauge(descReady, float64(h.NodesReady), h.Cluster, h.Environment)
		gauge(descAddOns, float64(h.AddOns), h.Cluster, h.Environment)
		gauge(descAvailable, float64(h.AddOnsOK), h.Cluster, h.Environment)
		if !h.CertificateExpiry.IsZero() {
			gauge(descCertExp, unix(h.CertificateExpiry), h.Cluster, h.Environment)
		}
		gauge(descPolicies, float64(h.Admission.Enforcing), h.Cluster, h.Environment, "deny")
		gauge(descPolicies, float64(h.Admission.Auditing), h.Cluster, h.Environment, "audit")
		for _, b := range h.Backups {
			gauge(descBackup, unix(b.LastSuccess), h.Cluster, h.Environment, b.Schedule)
			gauge(descRPO, b.RPOSeconds, h.Cluster, h.Environment, b.Schedule)
		}
		for _, d := range h.Drills {
			drillGauges(gauge, d, h.Cluster, h.Environment)
		}
	}
	for _, a := range apps {
		gauge(descSynced, bool01(a.Sync == "Synced"), a.Cluster, a.Name)
		gauge(descAppHealth, bool01(a.Health == "Healthy"), a.Cluster, a.Name)
	}
	gauge(descMembers, float64(len(health)))
	gauge(descGreen, float64(countHealthy(health)))
}

// Handler serves the metrics at MetricsPath (GET and HEAD only) and nothing else.
func (m *Metrics) Handler() http.Handler {
	metrics := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != MetricsPath:
			http.NotFound(w, r)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		default:
			metrics.ServeHTTP(w, r)
		}
	})
}

// Serve serves Handler on addr until the returned server is closed (its Addr is the address
// listened on: a port 0 becomes the one chosen).
func (m *Metrics) Serve(addr string) (*http.Server, error) {
	srv := &http.Server{Addr: addr, Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv.Addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
