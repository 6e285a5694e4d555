package catalog

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testManifest() Manifest {
	return Manifest{GatewayURL: "https://api.example.com", Products: []Product{
		{Name: "orders", Title: "Orders", Visibility: "external", Owners: []string{"team-shop"},
			Plans:    []Plan{{Name: "bronze", RequestsPerMinute: 60, RequestsPerMonth: 100000}},
			Versions: []VersionRef{{Version: "v1", Spec: "orders-v1.yaml", Path: "/orders/v1"}, {Version: "v2", Spec: "orders-v2.yaml", Path: "/orders/v2"}}},
		{Name: "ledger", Visibility: "internal", Versions: []VersionRef{{Version: "v1", Spec: "orders-v1.yaml", Path: "/ledger/v1"}}},
	}, Consumers: []Consumer{{ClientID: "shop-web", Plan: "bronze", Products: []string{"orders"}}}}
}

func TestBuild(t *testing.T) {
	c, err := Build(context.Background(), "testdata", testManifest())
	require.NoError(t, err)
	e, ok := c.Product("orders")
	require.True(t, ok)
	require.Len(t, e.Loaded, 2)
	v1 := e.Loaded[0]
	assert.Equal(t, "Orders", v1.Title)
	assert.Equal(t, []Operation{
		{Method: "GET", Path: "/orders", OperationID: "listOrders", Summary: "List orders", Tags: []string{"orders"}},
		{Method: "DELETE", Path: "/orders/{id}", OperationID: "cancelOrder", Summary: "Cancel an order", Tags: []string{"orders"}},
		{Method: "GET", Path: "/orders/{id}", OperationID: "getOrder", Summary: "Get an order by id", Tags: []string{"orders"}},
	}, v1.Operations)
	// The served document carries the other file's schema: one fetch for Swagger UI.
	var served map[string]any
	require.NoError(t, json.Unmarshal(v1.JSON, &served))
	assert.NotContains(t, string(v1.JSON), "schemas.yaml")
	assert.Contains(t, served["components"].(map[string]any)["schemas"], "schemas_Order")
	assert.Equal(t, []any{map[string]any{"url": "https://api.example.com/orders/v1", "description": "the gateway"}}, served["servers"], "tried through the gateway")
}

func TestBadDocument(t *testing.T) {
	m := testManifest()
	m.Products[0].Versions[1].Spec = "broken.yaml"
	_, err := Build(context.Background(), "testdata", m)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "product orders version v2: testdata/broken.yaml: not a readable OpenAPI document")
	assert.Contains(t, err.Error(), "Missing")
	m.Products[0].Versions[1].Spec = "absent.yaml"
	_, err = Build(context.Background(), "testdata", m)
	assert.ErrorContains(t, err, "product orders version v2: testdata/absent.yaml")
}

func TestSearch(t *testing.T) {
	c, err := Build(context.Background(), "testdata", testManifest())
	require.NoError(t, err)
	search := func(q string, internal bool, limit int) []Hit {
		hits, err := c.Search(q, internal, limit)
		require.NoError(t, err)
		return hits
	}
	hits := search("refund", false, 10)
	require.Len(t, hits, 1)
	assert.Equal(t, "refundOrder", hits[0].OperationID)
	assert.Equal(t, "v2", hits[0].Version)
	assert.Len(t, search("order by id", false, 10), 2, "every word: getOrder in v1 and v2")
	assert.Empty(t, search("ledger", false, 10), "internal products are not in the portal's search")
	assert.Len(t, search("ledger", true, 10), 3, "but in the admin's")
	assert.Empty(t, search("refund paid", false, 10))
	assert.Len(t, search("ORD", true, 100), 9, "prefixes, any case")
}

func TestDiff(t *testing.T) {
	c, err := Build(context.Background(), "testdata", testManifest())
	require.NoError(t, err)
	r, err := c.Diff(context.Background(), "orders", "v1", "v2")
	require.NoError(t, err)
	var texts []string
	for _, ch := range r.Changes {
		texts = append(texts, ch.ID)
	}
	assert.Equal(t, 2, r.Breaking, "%v", texts)
	assert.True(t, r.Changes[0].Breaking && r.Changes[1].Breaking, "breaking first")
	assert.Contains(t, texts, "api-removed-without-deprecation", "DELETE /orders/{id} is gone")
	assert.Contains(t, texts, "request-parameter-became-required", "status became required")
	assert.Contains(t, texts, "endpoint-added")
	_, err = c.Diff(context.Background(), "orders", "v1", "v3")
	assert.ErrorContains(t, err, `product orders has no version "v3"`)
	for _, ch := range r.Changes {
		assert.NotEmpty(t, strings.TrimSpace(ch.Text))
	}
}

// TestDocumentsCannotReachOut: a document's references may not fetch from the network or read
// files outside its folder, and a gzipped document may not expand without bound.
func TestDocumentsCannotReachOut(t *testing.T) {
	var fetched atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		_, _ = w.Write([]byte("Order: {type: object}\n"))
	}))
	defer srv.Close()
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.yaml"), []byte("Order: {type: object, description: a secret}\n"), 0o600))
	dir := filepath.Join(outside, "catalog")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "link.yaml")))
	doc := func(ref string) string {
		path := filepath.Join(dir, "doc.yaml")
		require.NoError(t, os.WriteFile(path, []byte(`openapi: 3.0.3
info: {title: T, version: "1"}
paths:
  /x:
    get:
      responses:
        "200":
          description: x
          content: {application/json: {schema: {$ref: "`+ref+`"}}}
`), 0o644))
		return path
	}
	for _, ref := range []string{srv.URL + "/schemas.yaml#/Order", "../secret.yaml#/Order", filepath.Join(outside, "secret.yaml") + "#/Order",
		"link.yaml#/Order", "file://" + filepath.Join(outside, "secret.yaml") + "#/Order"} {
		_, err := LoadSpec(context.Background(), doc(ref))
		require.Error(t, err, ref)
		assert.Contains(t, err.Error(), "reference", ref)
	}
	assert.Zero(t, fetched.Load(), "nothing fetched from the network")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "schemas.yaml"), []byte("Order: {type: object}\n"), 0o644))
	_, err := LoadSpec(context.Background(), doc("schemas.yaml#/Order"))
	assert.NoError(t, err, "a file of the document's own folder")

	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write([]byte("openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths: {}\nx-pad: '"))
	zeros := make([]byte, 1<<20)
	for range MaxDecompressedBytes >> 20 {
		_, _ = w.Write(zeros)
	}
	require.NoError(t, w.Close())
	t.Logf("a %d KiB document that expands past %d MiB", gz.Len()>>10, MaxDecompressedBytes>>20)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bomb.json.gz"), gz.Bytes(), 0o644))
	_, err = LoadSpec(context.Background(), filepath.Join(dir, "bomb.json.gz"))
	assert.ErrorContains(t, err, "decompressed document: larger than")
}

// TestReportJSON: the API's bytes are the report's JSON, encoded once.
func TestReportJSON(t *testing.T) {
	r := &Report{Product: "p", From: "1", To: "2", Breaking: 1, Changes: []Change{{ID: "api-removed", Level: "error", Breaking: true, Operation: "GET", Path: "/a", Text: "removed"}}}
	want, err := json.Marshal(r)
	require.NoError(t, err)
	got := r.JSON()
	assert.Equal(t, string(want)+"\n", string(got))
	assert.Same(t, &got[0], &r.JSON()[0], "encoded once")
}
