package services

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/anymap"
	"github.com/kplane/kplane/policies/pack"
)

// MeshRootNamespace is Istio's root namespace: its selector-less policies apply mesh-wide.
const MeshRootNamespace = "istio-system"

// meshed tells whether a Namespace gets Istio sidecars (or ambient redirection).
func meshed(labels map[string]any) bool {
	if v, ok := labels["istio-injection"]; ok {
		return v == "enabled"
	}
	_, rev := labels["istio.io/rev"]
	return rev || labels["istio.io/dataplane-mode"] == "ambient"
}

func strictMode(mode any) bool {
	return mode == nil || mode == "" || mode == "STRICT" || mode == "UNSET"
}

// MeshPolicies: every meshed namespace accepts only mutual TLS, and no policy lowers it.
func MeshPolicies() []pack.Policy {
	return []pack.Policy{{Name: "kplane-mesh-mtls-strict", Enforcement: pack.Mandatory,
		Description: "every meshed namespace is covered by a STRICT PeerAuthentication (its own or the mesh-wide one) and no PeerAuthentication or DestinationRule lowers mutual TLS", DescriptionKo: "메시에 포함된 모든 네임스페이스는 STRICT PeerAuthentication(자체 또는 메시 전체)이 적용되어야 하며 상호 TLS를 낮추는 PeerAuthentication·DestinationRule이 없어야 합니다",
		Remediation: "declare a PeerAuthentication with mtls.mode STRICT in " + MeshRootNamespace + " (or the namespace), as the mesh component does, and remove PERMISSIVE/DISABLE modes", RemediationKo: MeshRootNamespace + "(또는 해당 네임스페이스)에 mtls.mode STRICT인 PeerAuthentication을 선언하고 PERMISSIVE/DISABLE 설정을 제거하십시오",
		Controls: []pack.Control{{Framework: "KISA", ID: "CA-12"}, {Framework: "ISMS-P", ID: "2.7.1"}, {Framework: "ISMS-P", ID: "2.6.1"}},
		Subjects: "meshed namespaces (kplane:mesh)", SubjectsKo: "메시에 포함된 네임스페이스(kplane:mesh)",
		Applies: func(r pack.Resource) bool {
			_, labels := r.Meta()
			return r.Kind("", "Namespace") && meshed(labels)
		},
		StackCheck: func(rs []pack.Resource) []pack.Finding {
			meshedNS := map[string]pack.Resource{}
			nsWide := map[string]any{} // namespace -> mode of its selector-less PeerAuthentication
			var out []pack.Finding
			for _, r := range rs {
				if name, labels := r.Meta(); r.Kind("", "Namespace") && meshed(labels) {
					meshedNS[name] = r
				}
			}
			for _, r := range rs {
				name, _ := r.Meta()
				ns := r.Namespace()
				switch {
				case r.Kind("security.istio.io", "PeerAuthentication"):
					mode := pack.Get(r.Props, "spec", "mtls", "mode")
					if pack.Get(r.Props, "spec", "selector") == nil {
						nsWide[ns] = mode
					}
					if !strictMode(mode) {
						out = append(out, pack.Finding{URN: r.URN, Message: fmt.Sprintf("PeerAuthentication %s/%s: mtls.mode %v", ns, name, mode)})
					}
					ports, _ := pack.Get(r.Props, "spec", "portLevelMtls").(map[string]any)
					for port, p := range ports {
						if m := pack.Get(p, "mode"); !strictMode(m) {
							out = append(out, pack.Finding{URN: r.URN, Message: fmt.Sprintf("PeerAuthentication %s/%s: port %s mtls.mode %v", ns, name, port, m)})
						}
					}
				case r.Kind("networking.istio.io", "DestinationRule"):
					if mode := pack.Get(r.Props, "spec", "trafficPolicy", "tls", "mode"); mode == "DISABLE" {
						out = append(out, pack.Finding{URN: r.URN, Message: fmt.Sprintf("DestinationRule %s/%s: trafficPolicy.tls.mode DISABLE sends plain text", ns, name)})
					}
				}
			}
			for _, ns := range slices.Sorted(maps.Keys(meshedNS)) {
				// A namespace's own selector-less policy decides unless it inherits (UNSET).
				mode := nsWide[ns]
				if strictMode(mode) && mode != "STRICT" {
					mode = nsWide[MeshRootNamespace]
				}
				if mode != "STRICT" {
					out = append(out, pack.Finding{URN: meshedNS[ns].URN, Message: fmt.Sprintf("Namespace %s is meshed but no STRICT PeerAuthentication covers it (Istio's default is PERMISSIVE)", ns)})
				}
			}
			return out
		}}}
}

// Kong plugin types that authenticate a request, and those that limit its rate.
var (
	kongAuth = []string{"openid-connect", "jwt", "key-auth", "key-auth-enc", "oauth2", "oauth2-introspection", "basic-auth", "hmac-auth", "ldap-auth", "ldap-auth-advanced", "mtls-auth"}
	kongRate = []string{"rate-limiting", "rate-limiting-advanced"}
)

// route is one public route and what protects it.
type route struct {
	r          pack.Resource
	what       string
	auth, rate bool
}

func annotation(r pack.Resource, key string) string {
	v, _ := pack.Get(r.Props, "metadata", "annotations", key).(string)
	return v
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// publicRoutes finds the stack's public routes, Kong (Ingress of class kong, HTTPRoute on a
// kong Gateway) and Istio (VirtualService bound to a gateway), with whether an authentication
// and a rate limit apply to each.
func publicRoutes(rs []pack.Resource) []route {
	kongPlugins := map[string]string{} // ns/name (or name for cluster plugins) -> plugin type
	var globalPlugins []string
	services := map[string]pack.Resource{}
	kongGateways := map[string]bool{}
	type scoped struct {
		ns  string
		doc string
	}
	var reqAuthn, authz, rateFilters []scoped
	for _, r := range rs {
		name, labels := r.Meta()
		ns := r.Namespace()
		plugin, _ := r.Props["plugin"].(string)
		switch {
		case r.Kind("configuration.konghq.com", "KongPlugin"):
			kongPlugins[ns+"/"+name] = plugin
		case r.Kind("configuration.konghq.com", "KongClusterPlugin"):
			kongPlugins[name] = plugin
			if labels["global"] == "true" {
				globalPlugins = append(globalPlugins, plugin)
			}
		case r.Kind("", "Service"):
			services[ns+"/"+name] = r
		case r.Kind("gateway.networking.k8s.io", "Gateway"):
			if class, _ := pack.Get(r.Props, "spec", "gatewayClassName").(string); strings.Contains(class, "kong") {
				kongGateways[ns+"/"+name] = true
			}
		case r.Kind("security.istio.io", "RequestAuthentication"):
			reqAuthn = append(reqAuthn, scoped{ns: ns})
		case r.Kind("security.istio.io", "AuthorizationPolicy"):
			if requiresPrincipal(r.Props["spec"]) {
				authz = append(authz, scoped{ns: ns})
			}
		case r.Kind("networking.istio.io", "EnvoyFilter"):
			if doc, _ := json.Marshal(r.Props["spec"]); strings.Contains(string(doc), "local_ratelimit") || strings.Contains(string(doc), "envoy.filters.http.ratelimit") {
				rateFilters = append(rateFilters, scoped{ns: ns})
			}
		}
	}
	// kong judges the plugins named on the route and its backend services, and the global ones.
	kong := func(r pack.Resource, backends []string) (auth, rate bool) {
		ns := r.Namespace()
		types := slices.Clone(globalPlugins)
		names := splitList(annotation(r, "konghq.com/plugins"))
		for _, b := range backends {
			if svc, ok := services[ns+"/"+b]; ok {
				names = append(names, splitList(annotation(svc, "konghq.com/plugins"))...)
			}
		}
		for _, n := range names {
			if t, ok := kongPlugins[ns+"/"+n]; ok {
				types = append(types, t)
			} else if t, ok := kongPlugins[n]; ok {
				types = append(types, t)
			}
		}
		for _, t := range types {
			auth = auth || slices.Contains(kongAuth, t)
			rate = rate || slices.Contains(kongRate, t)
		}
		return auth, rate
	}
	covers := func(list []scoped, namespaces []string) bool {
		return slices.ContainsFunc(list, func(s scoped) bool { return slices.Contains(namespaces, s.ns) })
	}
	var out []route
	for _, r := range rs {
		if annotation(r, wellknown.ExposureAnnotation) == wellknown.ExposureInternal {
			continue
		}
		name, _ := r.Meta()
		ns := r.Namespace()
		switch {
		case r.Kind("networking.k8s.io", "Ingress"):
			class, _ := pack.Get(r.Props, "spec", "ingressClassName").(string)
			if class != "kong" && annotation(r, "kubernetes.io/ingress.class") != "kong" {
				continue
			}
			var backends []string
			for _, rule := range anymap.List(pack.Get(r.Props, "spec", "rules")) {
				for _, p := range anymap.List(pack.Get(rule, "http", "paths")) {
					if svc, _ := pack.Get(p, "backend", "service", "name").(string); svc != "" {
						backends = append(backends, svc)
					}
				}
			}
			auth, rate := kong(r, backends)
			out = append(out, route{r: r, what: fmt.Sprintf("Ingress %s/%s (kong)", ns, name), auth: auth || annotation(r, wellknown.ExposureAnnotation) == wellknown.ExposureLogin, rate: rate})
		case r.Kind("gateway.networking.k8s.io", "HTTPRoute"):
			onKong := false
			for _, p := range anymap.List(pack.Get(r.Props, "spec", "parentRefs")) {
				pns, _ := p["namespace"].(string)
				if pns == "" {
					pns = ns
				}
				onKong = onKong || kongGateways[pns+"/"+fmt.Sprint(p["name"])]
			}
			if !onKong {
				continue
			}
			var backends []string
			for _, rule := range anymap.List(pack.Get(r.Props, "spec", "rules")) {
				for _, b := range anymap.List(rule["backendRefs"]) {
					backends = append(backends, fmt.Sprint(b["name"]))
				}
			}
			auth, rate := kong(r, backends)
			out = append(out, route{r: r, what: fmt.Sprintf("HTTPRoute %s/%s (kong)", ns, name), auth: auth, rate: rate})
		case r.Kind("networking.istio.io", "VirtualService"):
			scope := []string{ns, MeshRootNamespace}
			public := false
			for _, g := range pack.Strings(pack.Get(r.Props, "spec", "gateways")) {
				if g == "mesh" {
					continue
				}
				public = true
				if gns, _, ok := strings.Cut(g, "/"); ok {
					scope = append(scope, gns)
				}
			}
			if !public {
				continue
			}
			out = append(out, route{r: r, what: fmt.Sprintf("VirtualService %s/%s (istio gateway)", ns, name),
				auth: covers(reqAuthn, scope) && covers(authz, scope), rate: covers(rateFilters, scope)})
		}
	}
	return out
}

// routeKind: the kinds of routes the route policies judge.
func routeKind(r pack.Resource) bool {
	return r.Kind("networking.k8s.io", "Ingress") || r.Kind("gateway.networking.k8s.io", "HTTPRoute") || r.Kind("networking.istio.io", "VirtualService")
}

// requiresPrincipal: an AuthorizationPolicy that admits only requests with a validated token
// (ALLOW with requestPrincipals, or DENY of notRequestPrincipals).
func requiresPrincipal(spec any) bool {
	action, _ := pack.Get(spec, "action").(string)
	for _, rule := range anymap.List(pack.Get(spec, "rules")) {
		for _, from := range anymap.List(rule["from"]) {
			switch {
			case (action == "" || action == "ALLOW") && len(pack.Strings(pack.Get(from, "source", "requestPrincipals"))) > 0:
				return true
			case action == "DENY" && len(pack.Strings(pack.Get(from, "source", "notRequestPrincipals"))) > 0:
				return true
			}
		}
	}
	return false
}

// RoutePolicies: every public route (Kong or Istio gateway) authenticates its callers and
// limits their rate.
func RoutePolicies() []pack.Policy {
	check := func(need func(route) bool, msg string) func([]pack.Resource) []pack.Finding {
		return func(rs []pack.Resource) []pack.Finding {
			var out []pack.Finding
			for _, rt := range publicRoutes(rs) {
				if !need(rt) {
					out = append(out, pack.Finding{URN: rt.r.URN, Message: rt.what + ": " + msg})
				}
			}
			return out
		}
	}
	return []pack.Policy{
		{Name: "kplane-route-authenticated", Enforcement: pack.Mandatory,
			Description: "public routes (Kong, Istio gateways) authenticate callers: a Kong auth plugin (openid-connect, jwt, key-auth, ...), or Istio RequestAuthentication with an AuthorizationPolicy requiring a principal", DescriptionKo: "공개 경로(Kong, Istio 게이트웨이)는 호출자를 인증해야 합니다: Kong 인증 플러그인 또는 Istio RequestAuthentication과 주체를 요구하는 AuthorizationPolicy",
			Remediation: "attach the gateway component's Keycloak token plugin (konghq.com/plugins) or its RequestAuthentication/AuthorizationPolicy; mark truly internal routes " + wellknown.ExposureAnnotation + ": internal", RemediationKo: "게이트웨이 컴포넌트의 Keycloak 토큰 플러그인(konghq.com/plugins) 또는 RequestAuthentication/AuthorizationPolicy를 적용하고, 내부 경로는 " + wellknown.ExposureAnnotation + ": internal로 표시하십시오",
			Controls: []pack.Control{{Framework: "KISA", ID: "CA-09"}, {Framework: "ISMS-P", ID: "2.6.1"}, {Framework: "ISMS-P", ID: "2.5.3"}},
			Applies:  routeKind, Subjects: "public routes (Kong or Istio, kplane:gateway)", SubjectsKo: "공개 라우트(Kong 또는 Istio, kplane:gateway)", StackCheck: check(func(r route) bool { return r.auth }, "no authentication applies to this public route")},
		{Name: "kplane-route-rate-limited", Enforcement: pack.Mandatory,
			Description: "public routes carry a rate limit (Kong rate-limiting plugin, Istio local or global rate-limit filter)", DescriptionKo: "공개 경로에는 요청 수 제한(Kong rate-limiting 플러그인, Istio 로컬/글로벌 rate limit 필터)이 있어야 합니다",
			Remediation: "attach the gateway component's rate-limiting plugin or EnvoyFilter to the route", RemediationKo: "게이트웨이 컴포넌트의 rate-limiting 플러그인 또는 EnvoyFilter를 경로에 적용하십시오",
			Controls: []pack.Control{{Framework: "ISMS-P", ID: "2.6.1"}, {Framework: "ISMS-P", ID: "2.9.2"}},
			Applies:  routeKind, Subjects: "public routes (Kong or Istio, kplane:gateway)", SubjectsKo: "공개 라우트(Kong 또는 Istio, kplane:gateway)", StackCheck: check(func(r route) bool { return r.rate }, "no rate limit applies to this public route")},
	}
}
