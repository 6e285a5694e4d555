package mesh

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kplane/kplane/internal/field"
)

// Route is how requests to a service are routed: canary weights over subsets, header routes
// before them, and the resilience settings of every request.
type Route struct {
	// Subsets of the service's pods, e.g. {stable: {version: v1}, canary: {version: v2}}.
	Subsets []Subset `json:"subsets,omitempty"`
	// Weights: percent per subset, summing to 100 (empty: plainly to the service).
	Weights []Weight `json:"weights,omitempty"`
	// HeaderRoutes send matching requests to a subset before the weights apply.
	HeaderRoutes []HeaderRoute `json:"headerRoutes,omitempty"`
	// Timeout of a request (e.g. 5s).
	Timeout string `json:"timeout,omitempty"`
	// Retries of failed requests.
	Retries *Retries `json:"retries,omitempty"`
	// CircuitBreaker limits connections and ejects failing pods.
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`
	// Fault injects delays or errors (for resilience tests).
	Fault *Fault `json:"fault,omitempty"`
	// Mirror copies a share of the traffic to a subset (responses discarded).
	Mirror *Mirror `json:"mirror,omitempty"`
}

type Subset struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

type Weight struct {
	Subset  string `json:"subset"`
	Percent int    `json:"percent"`
}

// HeaderRoute: requests whose Header matches (exactly one of Exact, Prefix, Regex) go to Subset.
type HeaderRoute struct {
	Header string `json:"header"`
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`
	Subset string `json:"subset"`
}

type Retries struct {
	Attempts      int    `json:"attempts"`
	PerTryTimeout string `json:"perTryTimeout,omitempty"`
	// On: Envoy's retry conditions (default "5xx,reset,connect-failure,retriable-4xx").
	On string `json:"on,omitempty"`
}

type CircuitBreaker struct {
	MaxConnections     int `json:"maxConnections,omitempty"`
	MaxPendingRequests int `json:"maxPendingRequests,omitempty"`
	// Consecutive5xx errors eject a pod for BaseEjectionTime (default 30s), checked every
	// Interval (default 10s), at most MaxEjectionPercent (default 50) of the pods at once.
	Consecutive5xx     int    `json:"consecutive5xx"`
	Interval           string `json:"interval,omitempty"`
	BaseEjectionTime   string `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent int    `json:"maxEjectionPercent,omitempty"`
}

type Fault struct {
	DelayPercent float64 `json:"delayPercent,omitempty"`
	Delay        string  `json:"delay,omitempty"`
	AbortPercent float64 `json:"abortPercent,omitempty"`
	AbortStatus  int     `json:"abortStatus,omitempty"`
}

type Mirror struct {
	Subset  string  `json:"subset"`
	Percent float64 `json:"percent"`
}

func (r Route) validate() error {
	errs := r.validateSplit()
	errs = append(errs, r.validateResilience()...)
	return errs.OrNil()
}

// validateSplit checks how traffic is divided: subsets, weights, header routes.
func (r Route) validateSplit() (errs field.ErrorList) {
	subsets := map[string]bool{}
	for i, s := range r.Subsets {
		switch {
		case !dnsLabel.MatchString(s.Name) || subsets[s.Name]:
			errs.Add(field.Invalid(field.At("subsets[%d].name", i), s.Name, "unique lower-case letters, digits and dashes"))
		case len(s.Labels) == 0:
			errs.Add(field.Required(field.At("subsets[%d].labels", i), "the pods' labels that make the subset, e.g. version: v2"))
		}
		subsets[s.Name] = true
	}
	known := func(p *field.Path, s string) *field.Error {
		if !subsets[s] {
			return field.Invalid(p, s, fmt.Sprintf("no such subset (subsets: %s)", strings.Join(slices.Sorted(maps.Keys(subsets)), ", ")))
		}
		return nil
	}
	sum := 0
	for i, w := range r.Weights {
		errs.Add(known(field.At("weights[%d].subset", i), w.Subset))
		if w.Percent < 0 || w.Percent > 100 {
			errs.Add(field.Invalid(field.At("weights[%d].percent", i), w.Percent, "0 to 100"))
		}
		sum += w.Percent
	}
	if len(r.Weights) > 0 && sum != 100 {
		errs.Add(field.Invalid(field.At("weights"), nil, fmt.Sprintf("they sum to %d; make them sum to 100", sum)))
	}
	for i, h := range r.HeaderRoutes {
		set := 0
		for _, v := range []string{h.Exact, h.Prefix, h.Regex} {
			if v != "" {
				set++
			}
		}
		switch {
		case !headerName.MatchString(h.Header):
			errs.Add(field.Invalid(field.At("headerRoutes[%d].header", i), h.Header, "a lower-case header name"))
		case set != 1:
			errs.Add(field.Invalid(field.At("headerRoutes[%d]", i), nil, "give exactly one of exact, prefix or regex"))
		}
		errs.Add(known(field.At("headerRoutes[%d].subset", i), h.Subset))
	}
	if m := r.Mirror; m != nil {
		errs.Add(known(field.At("mirror.subset"), m.Subset))
	}
	return errs
}

// validateResilience checks timeouts, retries, the circuit breaker, fault injection and mirroring.
func (r Route) validateResilience() (errs field.ErrorList) {
	if r.Timeout != "" {
		errs.Add(checkDuration(field.At("timeout"), r.Timeout))
	}
	if rt := r.Retries; rt != nil {
		if rt.Attempts < 1 || rt.Attempts > 10 {
			errs.Add(field.Invalid(field.At("retries.attempts"), rt.Attempts, "1 to 10"))
		}
		if rt.PerTryTimeout != "" {
			errs.Add(checkDuration(field.At("retries.perTryTimeout"), rt.PerTryTimeout))
		}
	}
	if cb := r.CircuitBreaker; cb != nil {
		switch {
		case cb.Consecutive5xx < 1:
			errs.Add(field.Invalid(field.At("circuitBreaker.consecutive5xx"), cb.Consecutive5xx, "errors in a row that eject a pod (at least 1)"))
		case cb.MaxConnections < 0 || cb.MaxPendingRequests < 0:
			errs.Add(field.Invalid(field.At("circuitBreaker"), nil, "maxConnections and maxPendingRequests are not negative"))
		case cb.MaxEjectionPercent < 0 || cb.MaxEjectionPercent > 100:
			errs.Add(field.Invalid(field.At("circuitBreaker.maxEjectionPercent"), cb.MaxEjectionPercent, "0 to 100"))
		}
		for _, c := range []struct{ key, v string }{{"circuitBreaker.interval", cb.Interval}, {"circuitBreaker.baseEjectionTime", cb.BaseEjectionTime}} {
			if c.v != "" {
				errs.Add(checkDuration(field.At("%s", c.key), c.v))
			}
		}
	}
	if f := r.Fault; f != nil {
		switch {
		case f.DelayPercent < 0 || f.DelayPercent > 100 || f.AbortPercent < 0 || f.AbortPercent > 100:
			errs.Add(field.Invalid(field.At("fault"), nil, "delayPercent and abortPercent are percentages, 0 to 100"))
		case f.DelayPercent > 0 && f.Delay == "":
			errs.Add(field.Required(field.At("fault.delay"), "with delayPercent (e.g. 2s)"))
		case f.AbortPercent > 0 && (f.AbortStatus < 200 || f.AbortStatus > 599):
			errs.Add(field.Invalid(field.At("fault.abortStatus"), f.AbortStatus, "an HTTP status, e.g. 503"))
		case f.DelayPercent == 0 && f.AbortPercent == 0:
			errs.Add(field.Invalid(field.At("fault"), nil, "give delayPercent or abortPercent (or leave fault out)"))
		}
		if f.Delay != "" {
			errs.Add(checkDuration(field.At("fault.delay"), f.Delay))
		}
	}
	if m := r.Mirror; m != nil {
		if m.Percent <= 0 || m.Percent > 100 {
			errs.Add(field.Invalid(field.At("mirror.percent"), m.Percent, "more than 0, at most 100"))
		}
	}
	return errs
}

// destinationRule: the subsets, ISTIO_MUTUAL (a host's own rule replaces the namespace's), the
// circuit breaker.
func (r Route) destinationRule(host string) map[string]any {
	policy := map[string]any{"tls": map[string]any{"mode": "ISTIO_MUTUAL"}}
	if cb := r.CircuitBreaker; cb != nil {
		pool := map[string]any{}
		if cb.MaxConnections > 0 {
			pool["tcp"] = map[string]any{"maxConnections": cb.MaxConnections}
		}
		if cb.MaxPendingRequests > 0 {
			pool["http"] = map[string]any{"http1MaxPendingRequests": cb.MaxPendingRequests}
		}
		if len(pool) > 0 {
			policy["connectionPool"] = pool
		}
		policy["outlierDetection"] = map[string]any{"consecutive5xxErrors": cb.Consecutive5xx, "interval": cmp.Or(cb.Interval, "10s"),
			"baseEjectionTime": cmp.Or(cb.BaseEjectionTime, "30s"), "maxEjectionPercent": cmp.Or(cb.MaxEjectionPercent, 50)}
	}
	spec := map[string]any{"host": host, "trafficPolicy": policy}
	if len(r.Subsets) > 0 {
		subsets := []any{}
		for _, s := range r.Subsets {
			labels := map[string]any{}
			for k, v := range s.Labels {
				labels[k] = v
			}
			subsets = append(subsets, map[string]any{"name": s.Name, "labels": labels})
		}
		spec["subsets"] = subsets
	}
	return spec
}

// virtualService: header routes first, then the weighted (or plain) route; each with the
// timeout, retries, fault and mirror.
func (r Route) virtualService(host string) map[string]any {
	common := func(route map[string]any) map[string]any {
		if r.Timeout != "" {
			route["timeout"] = r.Timeout
		}
		if rt := r.Retries; rt != nil {
			retries := map[string]any{"attempts": rt.Attempts, "retryOn": cmp.Or(rt.On, "5xx,reset,connect-failure,retriable-4xx")}
			if rt.PerTryTimeout != "" {
				retries["perTryTimeout"] = rt.PerTryTimeout
			}
			route["retries"] = retries
		}
		if f := r.Fault; f != nil {
			fault := map[string]any{}
			if f.DelayPercent > 0 {
				fault["delay"] = map[string]any{"fixedDelay": f.Delay, "percentage": map[string]any{"value": f.DelayPercent}}
			}
			if f.AbortPercent > 0 {
				fault["abort"] = map[string]any{"httpStatus": f.AbortStatus, "percentage": map[string]any{"value": f.AbortPercent}}
			}
			route["fault"] = fault
		}
		if m := r.Mirror; m != nil {
			route["mirror"] = map[string]any{"host": host, "subset": m.Subset}
			route["mirrorPercentage"] = map[string]any{"value": m.Percent}
		}
		return route
	}
	dest := func(subset string, weight int) map[string]any {
		d := map[string]any{"destination": map[string]any{"host": host}}
		if subset != "" {
			d["destination"].(map[string]any)["subset"] = subset
			if weight >= 0 {
				d["weight"] = weight
			}
		}
		return d
	}
	routes := []any{}
	for _, h := range r.HeaderRoutes {
		match := map[string]any{}
		switch {
		case h.Exact != "":
			match["exact"] = h.Exact
		case h.Prefix != "":
			match["prefix"] = h.Prefix
		default:
			match["regex"] = h.Regex
		}
		routes = append(routes, common(map[string]any{"name": "header-" + h.Header + "-" + h.Subset,
			"match": []any{map[string]any{"headers": map[string]any{h.Header: match}}}, "route": []any{dest(h.Subset, -1)}}))
	}
	main := []any{}
	for _, w := range r.Weights {
		main = append(main, dest(w.Subset, w.Percent))
	}
	if len(main) == 0 {
		main = append(main, dest("", -1))
	}
	routes = append(routes, common(map[string]any{"name": "default", "route": main}))
	return map[string]any{"hosts": []any{host}, "http": routes}
}
