package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/identitydemo"
)

// BenchmarkCatalogLoad: the catalog service under load, as its users reach it: its HTTP API
// behind a real Keycloak (every request's access token verified), 16 clients at once, each
// sending its next request when the last one answered. Search over a catalog of 10,070
// operations (530 documents), then the changes between two versions of Stripe's API (4.5 MB
// each): the first request computes them, later ones are served from the catalog's cache.
func BenchmarkCatalogLoad(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	d := startDemoIdentity(b, dir)
	defer d.stop()
	const redirect = "http://127.0.0.1:9/callback"
	d.args.Tools = append(d.args.Tools, identity.Tool{Name: "api-catalog", RedirectURIs: []string{redirect}})
	d.sync(b)
	httpClient, args := d.client, d.args
	token, err := identitydemo.OIDCAccessToken(httpClient, args.Issuer(), "api-catalog", redirect, "alice", identitydemo.AlicePassword, false)
	if err != nil {
		b.Fatal(err)
	}

	c := loadCatalog(b, filepath.Join(dir, "catalog"))
	h, err := catalog.NewServer(ctx, catalog.Config{Catalog: c, Issuer: args.Issuer(), ClientID: "api-catalog", SessionKey: []byte(strings.Repeat("k", 32)),
		SwaggerUIDir: dir, HTTPClient: httpClient, PublicURL: "http://127.0.0.1:9"})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	get := func(path string) error {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		// Read, not decoded: the clients share the 2 cores with the server.
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			return fmt.Errorf("GET %s: %s %v", path, resp.Status, err)
		}
		return nil
	}

	vocabulary := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
		"pet", "find", "status", "order", "user", "login", "upload", "image", "inventory", "delete", "update"}
	lat := load(b, 16, 250, func(rng *rand.Rand) error {
		q := make([]string, 1+rng.Intn(3))
		for i := range q {
			q[i] = vocabulary[rng.Intn(len(vocabulary))]
		}
		return get("/api/search?q=" + url.QueryEscape(strings.Join(q, " ")))
	})
	report(b, ms(lat[len(lat)/2]), "ms/search-p50", "catalog search over HTTP, 16 clients at once, p50 (4,000 requests)")
	report(b, ms(lat[len(lat)*99/100]), "ms/search-p99", "catalog search over HTTP, 16 clients, p99 (goal < 50 ms)")

	const diff = "/api/products/stripe/diff?from=2023-10-16&to=2024-06-20"
	timeIt(b, "changes between the two Stripe versions, first request (computed)", "s/diff-first", func() error { return get(diff) })
	lat = load(b, 16, 20, func(*rand.Rand) error { return get(diff) })
	report(b, ms(lat[len(lat)/2]), "ms/diff-cached-p50", "the same changes from the cache, 16 clients, p50 (320 requests)")
	report(b, ms(lat[len(lat)*99/100]), "ms/diff-cached-p99", "the same changes from the cache, 16 clients, p99 (goal < 10 ms)")
}

// load runs each of clients sending n requests one after another and returns every request's
// latency, sorted.
func load(b *testing.B, clients, n int, request func(*rand.Rand) error) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(i)))
			mine := make([]time.Duration, 0, n)
			for range n {
				start := time.Now()
				if err := request(rng); err != nil {
					errs <- err
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	return lat
}

// loadCatalog builds, in dir, a catalog of 530 products (the Swagger Petstore renamed per
// product: 10,070 operations) and a product "stripe" whose two versions are Stripe's API and a
// later one with an operation removed and every `expand` parameter renamed (breaking changes).
func loadCatalog(b *testing.B, dir string) *catalog.Catalog {
	mod, err := testbed.ModuleDir("github.com/pb33f/libopenapi@v0.36.1")
	if err != nil {
		b.Fatal(err)
	}
	specs := filepath.Join(mod, "test_specs")
	petstore, err := os.ReadFile(filepath.Join(specs, "petstorev3.json"))
	if err != nil {
		b.Fatal(err)
	}
	stripe, err := os.ReadFile(filepath.Join(specs, "stripe.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	write := func(name string, content []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	m := catalog.Manifest{}
	for i := range 530 {
		name := fmt.Sprintf("product-%03d", i)
		write(name+".json", []byte(strings.NewReplacer(`"/pet`, `"/`+name+`/pet`, `"/store`, `"/`+name+`/store`, `"/user`, `"/`+name+`/user`,
			`"operationId": "`, `"operationId": "`+strings.ReplaceAll(name, "-", "")).Replace(string(petstore))))
		m.Products = append(m.Products, catalog.Product{Name: name, Visibility: "external",
			Versions: []catalog.VersionRef{{Version: "v1", Spec: name + ".json", Path: "/" + name + "/v1"}}})
	}
	write("stripe-1.yaml", stripe)
	write("stripe-2.yaml", []byte(strings.NewReplacer("name: expand\n", "name: include\n", "  /v1/account_links:\n", "  /v1/account_link:\n").Replace(string(stripe))))
	m.Products = append(m.Products, catalog.Product{Name: "stripe", Visibility: "external", Versions: []catalog.VersionRef{
		{Version: "2023-10-16", Spec: "stripe-1.yaml", Path: "/stripe/2023-10-16"}, {Version: "2024-06-20", Spec: "stripe-2.yaml", Path: "/stripe/2024-06-20"}}})
	start := time.Now()
	c, err := catalog.Build(context.Background(), dir, m)
	if err != nil {
		b.Fatal(err)
	}
	report(b, time.Since(start).Seconds(), "s/index-531", "catalog of 531 documents read, validated, resolved and indexed")
	return c
}
