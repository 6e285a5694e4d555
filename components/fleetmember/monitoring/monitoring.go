// Package monitoring is the fleet's one view on the management cluster: kplane's recording and
// alerting rules over kplane-fleet's metrics (rules.yaml), the fleet's Grafana dashboard
// (dashboard.json), and the management Prometheus's configuration: it scrapes kplane-fleet's
// health watch and federates each member's own Prometheus under the member's name.
package monitoring

import (
	_ "embed"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

//go:embed rules.yaml
var rules []byte

// Dashboard is the fleet's Grafana dashboard (JSON; its datasource is a variable).
//
//go:embed dashboard.json
var Dashboard []byte

// Rules are kplane's fleet rules, with the `for` of the alerts named in forOverrides replaced
// (a test bed waits seconds, not minutes; production keeps the file's).
func Rules(forOverrides map[string]time.Duration) ([]byte, error) {
	if len(forOverrides) == 0 {
		return rules, nil
	}
	var doc struct {
		Groups []struct {
			Name  string           `yaml:"name"`
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &doc); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if d, ok := forOverrides[fmt.Sprint(r["alert"])]; ok {
				r["for"] = d.String()
				seen[fmt.Sprint(r["alert"])] = true
			}
		}
	}
	for name := range forOverrides {
		if !seen[name] {
			return nil, fmt.Errorf("monitoring: no alert %q in kplane's fleet rules", name)
		}
	}
	return yaml.Marshal(doc)
}

// Member is a member's own Prometheus, federated by the management one.
type Member struct {
	Cluster string
	// Federate is the URL of its Prometheus (https://prometheus.seoul.example.com); the
	// management Prometheus reads its /federate.
	Federate string
	// Match are the series federated (default: every job's recording rules and up).
	Match []string
}

// Options of the management Prometheus's configuration.
type Options struct {
	// Fleet is kplane-fleet's metrics address (host:port of `health --watch --metrics`).
	Fleet string
	// Interval of scrapes and rule evaluation (default 30s).
	Interval time.Duration
	// RuleFiles are the rule files' paths (kplane's fleet rules among them).
	RuleFiles []string
	Members   []Member
}

// DefaultMatch federates what a member's Prometheus summarises (recording rules: names with a
// colon) and every target's up, not its raw series.
var DefaultMatch = []string{`{__name__=~".+:.+"}`, `up`}

// PrometheusConfig is the management Prometheus's configuration (prometheus.yml).
func PrometheusConfig(o Options) ([]byte, error) {
	interval := o.Interval
	if interval == 0 {
		interval = 30 * time.Second
	}
	scrapes := []map[string]any{{"job_name": "kplane-fleet", "static_configs": []any{map[string]any{"targets": []string{o.Fleet}}}}}
	members := append([]Member(nil), o.Members...)
	sort.Slice(members, func(i, j int) bool { return members[i].Cluster < members[j].Cluster })
	for _, m := range members {
		u, err := url.Parse(m.Federate)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("cluster %s: prometheus %q: the URL of its Prometheus (https://host[:port])", m.Cluster, m.Federate)
		}
		match := m.Match
		if len(match) == 0 {
			match = DefaultMatch
		}
		scrapes = append(scrapes, map[string]any{
			"job_name": "federate-" + m.Cluster, "scheme": u.Scheme, "metrics_path": strings.TrimSuffix(u.Path, "/") + "/federate", "honor_labels": true,
			"params":         map[string]any{"match[]": match},
			"static_configs": []any{map[string]any{"targets": []string{u.Host}, "labels": map[string]string{"cluster": m.Cluster}}},
		})
	}
	return yaml.Marshal(map[string]any{
		"global":         map[string]any{"scrape_interval": interval.String(), "evaluation_interval": interval.String()},
		"rule_files":     o.RuleFiles,
		"scrape_configs": scrapes,
	})
}

// GrafanaINI renders grafana.ini's sections (section -> key -> value), sorted.
func GrafanaINI(sections map[string]any) string {
	var b strings.Builder
	names := make([]string, 0, len(sections))
	for name := range sections {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "[%s]\n", name)
		keys, _ := sections[name].(map[string]any)
		ks := make([]string, 0, len(keys))
		for k := range keys {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			fmt.Fprintf(&b, "%s = %v\n", k, keys[k])
		}
		b.WriteString("\n")
	}
	return b.String()
}

// GrafanaProvisioning are the fleet Grafana's provisioning files (path -> content): the
// management Prometheus at prometheusURL as its default data source, and the fleet's dashboard.
func GrafanaProvisioning(prometheusURL string) map[string][]byte {
	return map[string][]byte{
		"provisioning/datasources/kplane-fleet.yaml": []byte("apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n    uid: prometheus\n    access: proxy\n    isDefault: true\n    url: " + prometheusURL + "\n"),
		"provisioning/dashboards/kplane-fleet.yaml":  []byte("apiVersion: 1\nproviders:\n  - name: kplane-fleet\n    folder: kplane\n    type: file\n    disableDeletion: true\n    editable: false\n    options: {path: /var/lib/grafana/dashboards/kplane}\n"),
		"dashboards/kplane/kplane-fleet.json":        Dashboard,
	}
}
