package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/components/gateway"
	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/tests/testbed"
)

// BenchmarkCatalog: indexing 1,000 documents (the Swagger Petstore, each a product of its own:
// its paths and operation ids renamed per product; read, validated, references resolved, indexed)
// and the search latency over them (p50, p99 of 2,000 queries of one to three words).
func BenchmarkCatalog(b *testing.B) {
	modDir, err := testbed.ModuleDir("github.com/pb33f/libopenapi@v0.36.1")
	if err != nil {
		b.Fatal(err)
	}
	petstore, err := os.ReadFile(filepath.Join(modDir, "test_specs", "petstorev3.json"))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"}
	m := catalog.Manifest{}
	for i := range 1000 {
		name := fmt.Sprintf("%s-%s-%03d", words[i%len(words)], words[(i/len(words))%len(words)], i)
		doc := strings.NewReplacer(`"/pet`, `"/`+name+`/pet`, `"/store`, `"/`+name+`/store`, `"/user`, `"/`+name+`/user`,
			`"operationId": "`, `"operationId": "`+strings.ReplaceAll(name, "-", "")).Replace(string(petstore))
		if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(doc), 0o644); err != nil {
			b.Fatal(err)
		}
		m.Products = append(m.Products, catalog.Product{Name: name, Visibility: "external",
			Versions: []catalog.VersionRef{{Version: "v1", Spec: name + ".json", Path: "/" + name + "/v1"}}})
	}
	start := time.Now()
	c, err := catalog.Build(context.Background(), dir, m)
	if err != nil {
		b.Fatal(err)
	}
	report(b, time.Since(start).Seconds(), "s/index-1000", "catalog: read, validate, resolve and index 1,000 documents")
	ops := 0
	for _, e := range c.Entries {
		ops += len(e.Loaded[0].Operations)
	}
	report(b, float64(ops), "operations", "operations indexed")
	vocabulary := append(slices.Clone(words), "pet", "find", "status", "order", "user", "login", "upload", "image", "inventory", "delete", "update")
	rng := rand.New(rand.NewSource(1))
	var lat []time.Duration
	hits := 0
	for range 2000 {
		q := make([]string, 1+rng.Intn(3))
		for i := range q {
			q[i] = vocabulary[rng.Intn(len(vocabulary))]
		}
		start := time.Now()
		found, err := c.Search(strings.Join(q, " "), false, 50)
		if err != nil {
			b.Fatal(err)
		}
		hits += len(found)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	report(b, float64(lat[len(lat)/2].Microseconds())/1000, "ms/search-p50", "catalog search, p50 of 2,000 queries (1-3 words)")
	report(b, float64(lat[len(lat)*99/100].Microseconds())/1000, "ms/search-p99", "catalog search, p99 (goal < 50 ms)")
	report(b, float64(hits)/2000, "hits/query", "hits per query (at most 50)")
}

// BenchmarkRoutes: rendering the gateway configuration of 10,000 routes (2,000 products of five
// versions, two plans each, 500 consumers) for Kong and for Istio.
func BenchmarkRoutes(b *testing.B) {
	a := gateway.Args{Host: "api.example.com", TLSSecret: "api-tls", Tokens: gateway.Tokens{Issuer: "https://id.example.com/realms/kplane", PublicKey: "-----BEGIN PUBLIC KEY-----"},
		Istio: &gateway.IstioGateway{Name: "ingress", Namespace: "istio-ingress"}}
	for i := range 2000 {
		api := gateway.API{Name: fmt.Sprintf("api-%04d", i), Visibility: "external",
			Plans: []catalog.Plan{{Name: "free", RequestsPerMinute: 60}, {Name: "gold", RequestsPerSecond: 50}}}
		for v := 1; v <= 5; v++ {
			api.Versions = append(api.Versions, gateway.Version{Version: fmt.Sprintf("v%d", v), Spec: "unused.json",
				Upstream: gateway.Upstream{Service: api.Name, Namespace: fmt.Sprintf("team-%02d", i%40), Port: 8080}})
		}
		a.APIs = append(a.APIs, api)
	}
	for i := range 500 {
		a.Consumers = append(a.Consumers, gateway.Consumer{ClientID: fmt.Sprintf("app-%03d", i), Plan: "free", APIs: []string{a.APIs[i].Name, a.APIs[i+1].Name}})
	}
	for _, engine := range []string{"kong", "istio"} {
		start := time.Now()
		var objs []map[string]any
		if engine == "kong" {
			objs = a.KongObjects()
		} else {
			objs = a.IstioObjects()
		}
		raw, err := json.Marshal(objs)
		if err != nil {
			b.Fatal(err)
		}
		report(b, time.Since(start).Seconds()*1000, "ms/render-"+engine, fmt.Sprintf("render 10,000 routes for %s (%d objects, %.1f MB JSON)", engine, len(objs), float64(len(raw))/1e6))
	}
}
