package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/field"
)

// Catalog deploys kplane-catalog: the developer portal and admin API on its own host, behind
// Keycloak login (the identity component's tool ClientID; its "admin" role sees everything).
type Catalog struct {
	// Image of kplane-catalog, by digest.
	Image string `json:"image"`
	// Host of the portal (its certificate: TLSSecret, default the gateway's).
	Host      string `json:"host"`
	TLSSecret string `json:"tlsSecret,omitempty"`
	// ClientID of the portal in the realm (default api-catalog: add it to the identity's tools
	// with redirect URI https://<host>/callback).
	ClientID string `json:"clientId,omitempty"`
	// SessionKeySecret names a Secret in the gateway's namespace with session-key (32+ random
	// bytes) that signs the portal's cookies.
	SessionKeySecret string `json:"sessionKeySecret"`
	// IssuerCA is the PEM of the CA that signed Keycloak's certificate, when it is not a public
	// one (the composed platform takes the identity realm's issuerCA): the portal discovers the
	// realm when it starts.
	IssuerCA string `json:"issuerCA,omitempty"`
}

func (c Catalog) validate() error {
	var errs field.ErrorList
	switch {
	case !addon.Pinned(c.Image):
		errs.Add(field.Invalid(field.At("catalog.image"), c.Image, "pin kplane-catalog by digest"))
	case !hostName.MatchString(c.Host):
		errs.Add(field.Invalid(field.At("catalog.host"), c.Host, "the portal's host name, e.g. developers.example.com"))
	case c.SessionKeySecret == "":
		errs.Add(field.Required(field.At("catalog.sessionKeySecret"), "a Secret with session-key, 32 random bytes or more"))
	}
	return errs.OrNil()
}

// Manifest is the catalog's manifest of the gateway's APIs: the documents are named
// <api>-<version>.json.gz (self-contained, gzipped: ConfigMaps hold 1 MiB).
func (a Args) Manifest() catalog.Manifest {
	a = a.withDefaults()
	m := catalog.Manifest{GatewayURL: "https://" + a.Host}
	for _, api := range a.APIs {
		p := catalog.Product{Name: api.Name, Title: api.Title, Owners: api.Owners, Visibility: string(api.Visibility), Plans: api.Plans}
		for _, v := range api.Versions {
			p.Versions = append(p.Versions, catalog.VersionRef{Version: v.Version, Spec: api.Name + "-" + v.Version + ".json.gz", Path: Path(api.Name, v.Version)})
		}
		m.Products = append(m.Products, p)
	}
	for _, c := range a.Consumers {
		m.Consumers = append(m.Consumers, catalog.Consumer{ClientID: c.ClientID, Owner: c.Owner, Plan: c.Plan, Products: c.APIs})
	}
	return m
}

// catalogObjects: the documents and manifest in a ConfigMap, the Deployment, its Service and its
// route on the gateway.
func (a Args) catalogObjects() ([]map[string]any, error) {
	c := *a.Catalog
	if c.ClientID == "" {
		c.ClientID = "api-catalog"
	}
	if c.TLSSecret == "" {
		c.TLSSecret = a.TLSSecret
	}
	m := a.Manifest()
	manifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	binary, err := a.catalogDocuments()
	if err != nil {
		return nil, err
	}
	labels := map[string]any{wellknown.NameLabel: "kplane-catalog"}
	args := []any{"serve", "--dir=/etc/kplane/catalog", "--listen=:8080", "--issuer=" + a.Tokens.Issuer, "--client-id=" + c.ClientID,
		"--public-url=https://" + c.Host, "--swagger-ui=/usr/share/swagger-ui"}
	mounts := []any{map[string]any{"name": "catalog", "mountPath": "/etc/kplane/catalog", "readOnly": true}}
	volumes := []any{map[string]any{"name": "catalog", "configMap": map[string]any{"name": "kplane-catalog"}}}
	var out []map[string]any
	if c.IssuerCA != "" {
		args = append(args, "--ca-file=/etc/kplane/issuer-ca/ca.crt")
		mounts = append(mounts, map[string]any{"name": "issuer-ca", "mountPath": "/etc/kplane/issuer-ca", "readOnly": true})
		volumes = append(volumes, map[string]any{"name": "issuer-ca", "configMap": map[string]any{"name": "kplane-catalog-issuer-ca"}})
		out = append(out, object("v1", "ConfigMap", a.Namespace, "kplane-catalog-issuer-ca", nil, map[string]any{"data": map[string]any{"ca.crt": c.IssuerCA}}))
	}
	out = append(out,
		object("v1", "ConfigMap", a.Namespace, "kplane-catalog", nil, map[string]any{"data": map[string]any{"catalog.json": string(manifest)}, "binaryData": binary}),
		object("apps/v1", "Deployment", a.Namespace, "kplane-catalog", nil, map[string]any{"spec": map[string]any{
			"replicas": 2, "selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{"metadata": map[string]any{"labels": labels}, "spec": map[string]any{
				"automountServiceAccountToken": false,
				"securityContext":              map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
				"containers": []any{map[string]any{"name": "kplane-catalog", "image": c.Image, "args": args,
					"env":            []any{map[string]any{"name": "KPLANE_CATALOG_SESSION_KEY", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": c.SessionKeySecret, "key": "session-key"}}}},
					"ports":          []any{map[string]any{"name": "http", "containerPort": 8080}},
					"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/healthz", "port": "http"}},
					"volumeMounts":   mounts,
					"securityContext": map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
						"capabilities": map[string]any{"drop": []any{"ALL"}}},
					"resources": map[string]any{"requests": map[string]any{"cpu": "50m", "memory": "128Mi"}, "limits": map[string]any{"memory": "512Mi"}}}},
				"volumes": volumes}}}}),
		object("v1", "Service", a.Namespace, "kplane-catalog", nil, map[string]any{"spec": map[string]any{"selector": labels,
			"ports": []any{map[string]any{"name": "http", "port": 80, "targetPort": "http"}}}}),
	)
	if a.Engine == "kong" {
		// People log in through the realm (the portal's OIDC flow); each address is limited.
		out = append(out, clusterPlugin("kplane-catalog-rate", "rate-limiting", map[string]any{"limit_by": "ip", "policy": "local", "minute": 600}))
		out = append(out, object("networking.k8s.io/v1", "Ingress", a.Namespace, "kplane-catalog",
			map[string]any{"konghq.com/protocols": "https", "konghq.com/https-redirect-status-code": "308", "pulumi.com/skipAwait": "true",
				"konghq.com/plugins": "kplane-catalog-rate", wellknown.ExposureAnnotation: wellknown.ExposureLogin},
			map[string]any{"spec": map[string]any{"ingressClassName": "kong", "tls": []any{map[string]any{"hosts": []any{c.Host}, "secretName": c.TLSSecret}},
				"rules": []any{map[string]any{"host": c.Host, "http": map[string]any{"paths": []any{map[string]any{"path": "/", "pathType": "Prefix",
					"backend": map[string]any{"service": map[string]any{"name": "kplane-catalog", "port": map[string]any{"number": 80}}}}}}}}}}))
	} else {
		g := a.Istio
		out = append(out, object("networking.istio.io/v1", "VirtualService", g.Namespace, "kplane-catalog", nil, map[string]any{"spec": map[string]any{
			"hosts": []any{c.Host}, "gateways": []any{g.Namespace + "/" + g.Name},
			"http": []any{map[string]any{"name": "kplane-catalog", "route": []any{map[string]any{"destination": map[string]any{
				"host": "kplane-catalog." + a.Namespace + ".svc.cluster.local", "port": map[string]any{"number": 80}}}}}}}}))
	}
	return out, nil
}

// catalogDocuments are the published versions' OpenAPI documents, references internalized,
// gzipped for the catalog's ConfigMap (binaryData, by <api>-<version>.json.gz).
func (a Args) catalogDocuments() (map[string]any, error) {
	binary := map[string]any{}
	for _, api := range a.APIs {
		for _, v := range api.Versions {
			doc, err := catalog.LoadSpec(context.Background(), a.spec(v))
			if err != nil {
				return nil, err
			}
			doc.InternalizeRefs(context.Background(), nil)
			raw, err := json.Marshal(doc)
			if err != nil {
				return nil, err
			}
			var gz bytes.Buffer
			w := gzip.NewWriter(&gz)
			_, _ = w.Write(raw)
			_ = w.Close()
			binary[api.Name+"-"+v.Version+".json.gz"] = base64.StdEncoding.EncodeToString(gz.Bytes())
		}
	}
	return binary, nil
}
