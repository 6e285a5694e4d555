package gateway

import (
	"cmp"
	"slices"
	"strings"

	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/anymap"
)

func managed() map[string]any { return map[string]any{wellknown.ManagedByLabel: wellknown.ManagedBy} }

func object(apiVersion, kind, namespace, name string, annotations map[string]any, rest map[string]any) map[string]any {
	md := map[string]any{"name": name, "labels": managed()}
	if namespace != "" {
		md["namespace"] = namespace
	}
	if len(annotations) > 0 {
		md["annotations"] = annotations
	}
	obj := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": md}
	for k, v := range rest {
		obj[k] = v
	}
	return obj
}

// Kong plugin names (KongClusterPlugins: routes and consumers in any namespace refer to them).
const (
	jwtPlugin      = "kplane-keycloak-jwt"
	internalPlugin = "kplane-internal-only"
)

func aclPlugin(api string) string        { return "kplane-" + api + "-acl" }
func planPlugin(api, plan string) string { return "kplane-" + api + "-plan-" + plan }

// clusterPlugin is a KongClusterPlugin for the kong ingress class.
func clusterPlugin(name, plugin string, config map[string]any) map[string]any {
	return object("configuration.konghq.com/v1", "KongClusterPlugin", "", name, map[string]any{"kubernetes.io/ingress.class": "kong"},
		map[string]any{"plugin": plugin, "config": config})
}

// KongObjects are the gateway's configuration for Kong's ingress controller: per version an
// Ingress (TLS, HTTPS only) with the jwt plugin checking Keycloak tokens (the consumer is the
// token's azp: its client), an ACL admitting the product's consumers, and per plan a rate limit
// that applies to the plan's consumers on the product's routes; per consumer a KongConsumer with
// its jwt and acl credentials and its plan's limits.
func (a Args) KongObjects() []map[string]any {
	a = a.withDefaults()
	out := []map[string]any{clusterPlugin(jwtPlugin, "jwt", map[string]any{
		"key_claim_name": "azp", "claims_to_verify": []any{"exp"}, "header_names": []any{"authorization"}, "run_on_preflight": false}),
		clusterPlugin(internalPlugin, "ip-restriction", map[string]any{"allow": anymap.Of(a.InternalCIDRs), "status": 403, "message": "internal API"})}
	for _, api := range a.APIs {
		plugins := []string{}
		if api.Visibility == "internal" {
			plugins = append(plugins, internalPlugin)
		}
		if !api.Anonymous {
			plugins = append(plugins, jwtPlugin, aclPlugin(api.Name))
			out = append(out, clusterPlugin(aclPlugin(api.Name), "acl", map[string]any{"allow": []any{api.Name}, "hide_groups_header": true}))
		}
		for _, p := range api.Plans {
			out = append(out, clusterPlugin(planPlugin(api.Name, p.Name), "rate-limiting", rateLimit(p)))
			plugins = append(plugins, planPlugin(api.Name, p.Name))
		}
		for _, v := range api.Versions {
			annotations := map[string]any{"konghq.com/strip-path": "true", "konghq.com/protocols": "https", "konghq.com/https-redirect-status-code": "308",
				"konghq.com/plugins": strings.Join(plugins, ","), "pulumi.com/skipAwait": "true"}
			if api.Visibility == "internal" {
				annotations[wellknown.ExposureAnnotation] = wellknown.ExposureInternal
			}
			out = append(out, object("networking.k8s.io/v1", "Ingress", v.Upstream.Namespace, "kplane-"+api.Name+"-"+dash(v.Version), annotations, map[string]any{
				"spec": map[string]any{"ingressClassName": "kong",
					"tls": []any{map[string]any{"hosts": []any{a.Host}, "secretName": a.TLSSecret}},
					"rules": []any{map[string]any{"host": a.Host, "http": map[string]any{"paths": []any{map[string]any{
						"path": Path(api.Name, v.Version), "pathType": "Prefix",
						"backend": map[string]any{"service": map[string]any{"name": v.Upstream.Service, "port": map[string]any{"number": v.Upstream.Port}}}}}}}}}}))
		}
	}
	for _, c := range a.Consumers {
		id := dash(c.ClientID)
		creds := []any{"kplane-jwt-" + id}
		out = append(out, object("v1", "Secret", a.Namespace, "kplane-jwt-"+id, nil, map[string]any{
			"type": "Opaque", "stringData": map[string]any{"key": c.ClientID, "algorithm": "RS256", "rsa_public_key": a.Tokens.PublicKey}}))
		out[len(out)-1]["metadata"].(map[string]any)["labels"].(map[string]any)["konghq.com/credential"] = "jwt"
		var plugins []string
		for _, name := range c.APIs {
			creds = append(creds, "kplane-acl-"+id+"-"+name)
			acl := object("v1", "Secret", a.Namespace, "kplane-acl-"+id+"-"+name, nil, map[string]any{"type": "Opaque", "stringData": map[string]any{"group": name}})
			acl["metadata"].(map[string]any)["labels"].(map[string]any)["konghq.com/credential"] = "acl"
			out = append(out, acl)
			plugins = append(plugins, planPlugin(name, c.Plan))
		}
		out = append(out, object("configuration.konghq.com/v1", "KongConsumer", a.Namespace, "kplane-"+id,
			map[string]any{"kubernetes.io/ingress.class": "kong", "konghq.com/plugins": strings.Join(plugins, ",")},
			map[string]any{"username": c.ClientID, "custom_id": c.ClientID, "credentials": creds}))
	}
	if k := a.KubeAPI; k != nil {
		// TLS passed through by SNI to the API server's Service (in default), CIDRs enforced.
		out = append(out, clusterPlugin("kplane-kube-api-cidrs", "ip-restriction", map[string]any{"allow": anymap.Of(k.AllowedCIDRs)}),
			object("configuration.konghq.com/v1beta1", "TCPIngress", "default", "kplane-kube-api",
				map[string]any{"kubernetes.io/ingress.class": "kong", "konghq.com/protocols": "tls_passthrough", "konghq.com/plugins": "kplane-kube-api-cidrs"},
				map[string]any{"spec": map[string]any{"rules": []any{map[string]any{"host": k.Host, "port": 443,
					"backend": map[string]any{"serviceName": "kubernetes", "servicePort": 443}}}}}))
	}
	return out
}

// rateLimit is the rate-limiting plugin's configuration of a plan: counted per consumer, local
// to each Kong node unless the chart's values switch policy to redis.
func rateLimit(p catalog.Plan) map[string]any {
	c := map[string]any{"limit_by": "consumer", "policy": "local", "fault_tolerant": true, "hide_client_headers": false}
	for k, v := range map[string]int{"second": p.RequestsPerSecond, "minute": p.RequestsPerMinute, "day": p.RequestsPerDay, "month": p.RequestsPerMonth} {
		if v > 0 {
			c[k] = v
		}
	}
	return c
}

// IstioObjects are the routes on the mesh's gateway: a Gateway (HTTPS with the host's
// certificate, HTTP redirected), per version a VirtualService, Keycloak's tokens checked by a
// RequestAuthentication, an AuthorizationPolicy admitting only tokens of the product's consumers
// on its paths, and a local rate limit per route (the highest of its plans).
func (a Args) IstioObjects() []map[string]any {
	a = a.withDefaults()
	g := a.Istio
	selector := map[string]any{"istio": g.Name}
	gwRef := g.Namespace + "/" + g.Name
	hosts := []any{a.Host}
	servers := []any{map[string]any{"port": map[string]any{"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": []any{a.Host},
		"tls": map[string]any{"mode": "SIMPLE", "credentialName": a.TLSSecret, "minProtocolVersion": "TLSV1_2"}}}
	if k := a.KubeAPI; k != nil {
		servers = append(servers, map[string]any{"port": map[string]any{"number": 443, "name": "tls-kube-api", "protocol": "TLS"}, "hosts": []any{k.Host},
			"tls": map[string]any{"mode": "PASSTHROUGH"}})
	}
	if c := a.Catalog; c != nil {
		hosts = append(hosts, c.Host)
		servers = append(servers, map[string]any{"port": map[string]any{"number": 443, "name": "https-catalog", "protocol": "HTTPS"}, "hosts": []any{c.Host},
			"tls": map[string]any{"mode": "SIMPLE", "credentialName": cmp.Or(c.TLSSecret, a.TLSSecret), "minProtocolVersion": "TLSV1_2"}})
	}
	out := []map[string]any{
		object("networking.istio.io/v1", "Gateway", g.Namespace, g.Name, nil, map[string]any{"spec": map[string]any{"selector": selector,
			"servers": append(servers,
				map[string]any{"port": map[string]any{"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts, "tls": map[string]any{"httpsRedirect": true}})}}),
		object("security.istio.io/v1", "RequestAuthentication", g.Namespace, "kplane-keycloak", nil, map[string]any{"spec": map[string]any{
			"selector": map[string]any{"matchLabels": selector},
			"jwtRules": []any{map[string]any{"issuer": a.Tokens.Issuer, "jwksUri": a.Tokens.JWKSURI, "forwardOriginalToken": true}}}}),
	}
	var rules []any
	for _, api := range a.APIs {
		var consumers []any
		for _, c := range a.Consumers {
			if slices.Contains(c.APIs, api.Name) {
				consumers = append(consumers, c.ClientID)
			}
		}
		for _, v := range api.Versions {
			prefix := Path(api.Name, v.Version)
			out = append(out, object("networking.istio.io/v1", "VirtualService", g.Namespace, "kplane-"+api.Name+"-"+dash(v.Version), nil, map[string]any{"spec": map[string]any{
				"hosts": []any{a.Host}, "gateways": []any{gwRef},
				"http": []any{map[string]any{"name": "kplane-" + api.Name + "-" + dash(v.Version), "match": []any{map[string]any{"uri": map[string]any{"prefix": prefix + "/"}}}, "rewrite": map[string]any{"uri": "/"},
					"route": []any{map[string]any{"destination": map[string]any{"host": v.Upstream.Service + "." + v.Upstream.Namespace + ".svc.cluster.local",
						"port": map[string]any{"number": v.Upstream.Port}}}}}}}}))
			if !api.Anonymous && len(consumers) == 0 {
				continue // no client may call it yet: no rule allows it (as Kong's ACL admits nobody); Istio refuses a claim rule without values
			}
			rule := map[string]any{"to": []any{map[string]any{"operation": map[string]any{"hosts": []any{a.Host}, "paths": []any{prefix + "/*"}}}}}
			source := map[string]any{}
			if !api.Anonymous {
				source["requestPrincipals"] = []any{a.Tokens.Issuer + "/*"}
				rule["when"] = []any{map[string]any{"key": "request.auth.claims[azp]", "values": append([]any{}, consumers...)}}
			}
			if api.Visibility == "internal" {
				source["remoteIpBlocks"] = anymap.Of(a.InternalCIDRs)
			}
			if len(source) > 0 {
				rule["from"] = []any{map[string]any{"source": source}}
			}
			rules = append(rules, rule)
		}
	}
	if k := a.KubeAPI; k != nil { // the API server checks each client; the gateway, where from
		out = append(out, object("networking.istio.io/v1", "VirtualService", g.Namespace, "kplane-kube-api", nil, map[string]any{"spec": map[string]any{
			"hosts": []any{k.Host}, "gateways": []any{gwRef},
			"tls": []any{map[string]any{"match": []any{map[string]any{"port": 443, "sniHosts": []any{k.Host}}},
				"route": []any{map[string]any{"destination": map[string]any{"host": "kubernetes.default.svc.cluster.local", "port": map[string]any{"number": 443}}}}}}}}))
		rules = append(rules, map[string]any{"from": []any{map[string]any{"source": map[string]any{"remoteIpBlocks": anymap.Of(k.AllowedCIDRs)}}},
			"when": []any{map[string]any{"key": "connection.sni", "values": []any{k.Host}}}})
	}
	if a.Catalog != nil { // the portal logs people in itself
		rules = append(rules, map[string]any{"to": []any{map[string]any{"operation": map[string]any{"hosts": []any{a.Catalog.Host}}}}})
	}
	// On the gateway, an ALLOW policy denies everything it does not allow.
	out = append(out, object("security.istio.io/v1", "AuthorizationPolicy", g.Namespace, "kplane-apis", nil, map[string]any{"spec": map[string]any{
		"selector": map[string]any{"matchLabels": selector}, "action": "ALLOW", "rules": rules}}))
	out = append(out, a.localRateLimit())
	return out
}

// localRateLimit is an EnvoyFilter giving each API's routes on the gateway a token bucket: the
// highest per-minute (or per-second) allowance among its plans, per gateway pod.
func (a Args) localRateLimit() map[string]any {
	g := a.Istio
	var patches []any
	for _, api := range a.APIs {
		perMinute := 0
		for _, p := range api.Plans {
			perMinute = max(perMinute, p.RequestsPerMinute, p.RequestsPerSecond*60)
		}
		if perMinute == 0 {
			continue
		}
		for _, v := range api.Versions {
			patches = append(patches, map[string]any{"applyTo": "HTTP_ROUTE",
				"match": map[string]any{"context": "GATEWAY", "routeConfiguration": map[string]any{"vhost": map[string]any{"name": a.Host + ":443",
					"route": map[string]any{"name": "kplane-" + api.Name + "-" + dash(v.Version)}}}},
				"patch": map[string]any{"operation": "MERGE", "value": map[string]any{"typed_per_filter_config": map[string]any{"envoy.filters.http.local_ratelimit": map[string]any{
					"@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", "stat_prefix": "kplane_" + api.Name,
					"token_bucket":    map[string]any{"max_tokens": perMinute, "tokens_per_fill": perMinute, "fill_interval": "60s"},
					"filter_enabled":  map[string]any{"default_value": map[string]any{"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "kplane_rl_enabled"},
					"filter_enforced": map[string]any{"default_value": map[string]any{"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "kplane_rl_enforced"}}}}}})
		}
	}
	filter := map[string]any{"applyTo": "HTTP_FILTER", "match": map[string]any{"context": "GATEWAY", "listener": map[string]any{"filterChain": map[string]any{"filter": map[string]any{
		"name": "envoy.filters.network.http_connection_manager"}}}},
		"patch": map[string]any{"operation": "INSERT_BEFORE", "value": map[string]any{"name": "envoy.filters.http.local_ratelimit",
			"typed_config": map[string]any{"@type": "type.googleapis.com/udpa.type.v1.TypedStruct", "type_url": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
				"value": map[string]any{"stat_prefix": "kplane_http_local_rate_limiter"}}}}}
	return object("networking.istio.io/v1alpha3", "EnvoyFilter", g.Namespace, "kplane-rate-limits", nil, map[string]any{"spec": map[string]any{
		"workloadSelector": map[string]any{"labels": map[string]any{"istio": g.Name}}, "configPatches": append([]any{filter}, patches...)}})
}

// dash makes a version or client id usable in object names (dots and underscores to dashes).
func dash(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '.' || c == '_' {
			b[i] = '-'
		}
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
