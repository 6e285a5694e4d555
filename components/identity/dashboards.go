package identity

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// LogQuery is one audit question asked of Loki: a stream (job), Loki's json parser, for Keycloak
// lines the event message reparsed field by field, and label filters. LogQL renders it for the
// dashboards; Match answers it for one shipped line, so tests put real API server audit events
// and real Keycloak event lines through the same query the dashboard shows.
type LogQuery struct {
	Job string
	// Event fields taken out of Keycloak's message (type="LOGIN", realmName="kplane", ...).
	EventFields []string
	// Filters are label regular expressions (fully anchored, as LogQL's =~).
	Filters [][2]string
	// By are the labels a table or graph groups by.
	By []string
}

// LogQL is the query's Loki form: a count over window grouped by By.
func (q LogQuery) LogQL(window string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{job=%q, cluster=~"$cluster"} | json`, q.Job)
	if len(q.EventFields) > 0 {
		b.WriteString(` | line_format "{{.message}}"`)
		for _, f := range q.EventFields {
			fmt.Fprintf(&b, " | regexp %q", eventField(f).String())
		}
	}
	for _, f := range q.Filters {
		fmt.Fprintf(&b, " | %s=~%q", f[0], f[1])
	}
	return fmt.Sprintf("sum by (%s) (count_over_time(%s [%s]))", strings.Join(q.By, ", "), b.String(), window)
}

// eventField extracts one key="value" of a Keycloak event message (Keycloak quotes values; the
// regexp takes an unquoted value too).
func eventField(f string) *regexp.Regexp {
	return regexp.MustCompile(`(?:^|, )` + regexp.QuoteMeta(f) + `="?(?P<` + f + `>[^",]*)`)
}

// Match evaluates the query on one line as Fluent Bit ships it (a JSON record): Loki's json
// parser (nested keys joined by "_", scalars only), the message's event fields, then the filters.
// It returns the By labels of a matching line.
func (q LogQuery) Match(line string) (map[string]string, bool) {
	var rec map[string]any
	if json.Unmarshal([]byte(line), &rec) != nil {
		return nil, false
	}
	labels := map[string]string{}
	flatten("", rec, labels)
	if len(q.EventFields) > 0 {
		msg := labels["message"]
		for _, f := range q.EventFields {
			if m := eventField(f).FindStringSubmatch(msg); m != nil {
				labels[f] = m[1]
			}
		}
	}
	for _, f := range q.Filters {
		if !regexp.MustCompile("^(?:" + f[1] + ")$").MatchString(labels[f[0]]) {
			return nil, false
		}
	}
	out := map[string]string{}
	for _, k := range q.By {
		out[k] = labels[k]
	}
	return out, true
}

func flatten(prefix string, v any, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if prefix != "" {
				k = prefix + "_" + k
			}
			flatten(k, x, out)
		}
	case string:
		out[prefix] = v
	case float64:
		out[prefix] = strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		out[prefix] = strconv.FormatBool(v)
	}
}

// The audit questions the dashboards answer.
var (
	// Logins: every login and failed login to the realm, by type, client and user.
	QueryLogins = LogQuery{Job: KeycloakEventsJob, EventFields: []string{"type", "realmName", "clientId", "username", "ipAddress", "error"},
		Filters: [][2]string{{"type", "LOGIN|LOGIN_ERROR"}}, By: []string{"type", "clientId", "username", "ipAddress", "error"}}
	// Keycloak administration: who (the administrator's user and client internal ids) changed what in a
	// realm (admin events).
	QueryKeycloakAdmin = LogQuery{Job: KeycloakEventsJob, EventFields: []string{"operationType", "resourceType", "resourcePath", "userId", "clientId"},
		Filters: [][2]string{{"operationType", "CREATE|UPDATE|DELETE|ACTION"}}, By: []string{"operationType", "resourceType", "resourcePath", "userId", "clientId"}}
	// Cluster changes made by people (prefixed OIDC users), not controllers.
	QueryClusterChanges = LogQuery{Job: APIServerAuditJob, Filters: [][2]string{{"user_username", "oidc:.*"}, {"verb", "create|update|patch|delete|deletecollection"}},
		By: []string{"user_username", "verb", "objectRef_resource", "objectRef_namespace", "objectRef_name"}}
	// Denied requests: refused authentication (401) or authorisation (403).
	QueryDenied = LogQuery{Job: APIServerAuditJob, Filters: [][2]string{{"responseStatus_code", "401|403"}},
		By: []string{"user_username", "verb", "objectRef_resource", "objectRef_namespace", "responseStatus_code"}}
)

// Dashboards are kplane's audit dashboards (Grafana JSON, file name to content).
func Dashboards() map[string]string {
	table := func(title string, q LogQuery) map[string]any {
		return map[string]any{"type": "table", "title": title, "datasource": map[string]any{"type": "loki", "uid": "kplane-loki"},
			"targets":         []any{map[string]any{"refId": "A", "expr": q.LogQL("$__range"), "queryType": "instant", "instant": true}},
			"transformations": []any{map[string]any{"id": "sortBy", "options": map[string]any{"sort": []any{map[string]any{"field": "Value #A", "desc": true}}}}}}
	}
	graph := func(title string, q LogQuery, by ...string) map[string]any {
		q.By = by
		return map[string]any{"type": "timeseries", "title": title, "datasource": map[string]any{"type": "loki", "uid": "kplane-loki"},
			"targets": []any{map[string]any{"refId": "A", "expr": q.LogQL("$__interval"), "legendFormat": "{{" + strings.Join(by, "}} {{") + "}}"}}}
	}
	board := func(uid, title string, panels ...map[string]any) string {
		for i, p := range panels {
			p["id"] = i + 1
			p["gridPos"] = map[string]any{"x": 0, "y": i * 9, "w": 24, "h": 9}
		}
		b, _ := json.MarshalIndent(map[string]any{
			"uid": uid, "title": title, "tags": []any{"kplane", "audit"}, "schemaVersion": 39, "editable": false, "time": map[string]any{"from": "now-24h", "to": "now"},
			"templating": map[string]any{"list": []any{map[string]any{"name": "cluster", "type": "query", "includeAll": true, "multi": true, "allValue": ".*",
				"datasource": map[string]any{"type": "loki", "uid": "kplane-loki"}, "query": "label_values(cluster)", "refresh": 2}}},
			"panels": panels,
		}, "", " ")
		return string(b)
	}
	return map[string]string{
		"kplane-logins.json": board("kplane-logins", "kplane audit: logins",
			graph("Logins and failed logins", QueryLogins, "type"),
			table("Failed logins by user and address", LogQuery{Job: QueryLogins.Job, EventFields: QueryLogins.EventFields,
				Filters: [][2]string{{"type", "LOGIN_ERROR"}}, By: []string{"username", "ipAddress", "error"}}),
			table("Logins by client and user", QueryLogins)),
		"kplane-admin-actions.json": board("kplane-admin-actions", "kplane audit: admin actions",
			table("Keycloak administration", QueryKeycloakAdmin),
			table("Cluster changes by people", QueryClusterChanges)),
		"kplane-denied-requests.json": board("kplane-denied-requests", "kplane audit: denied requests",
			graph("Denied requests", QueryDenied, "responseStatus_code"),
			table("Denied requests by user", QueryDenied)),
	}
}
