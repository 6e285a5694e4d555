package catalog

import (
	"context"
	"encoding/json"
	"strings"
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
