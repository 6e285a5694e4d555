// Package catalog is kplane's API catalog: the API products of an environment with their
// OpenAPI documents, validated and with every $ref resolved, several versions per product with
// the breaking changes between them, a search index over their operations, and the gateway's
// plans and consumers. It backs the developer portal and the admin API (server.go).
package catalog

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Manifest is what the gateway component writes next to the documents (catalog.json).
type Manifest struct {
	// GatewayURL is the gateway's public URL: each served document's server is it plus the
	// version's path, so "Try it out" goes through the gateway (with a token).
	GatewayURL string     `json:"gatewayURL,omitempty"`
	Products   []Product  `json:"products"`
	Consumers  []Consumer `json:"consumers,omitempty"`
}

// Product is an API product.
type Product struct {
	Name        string   `json:"name"`
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`
	Owners      []string `json:"owners,omitempty"`
	// Visibility: external products are in the developer portal; internal ones in the admin view only.
	Visibility string       `json:"visibility"`
	Plans      []Plan       `json:"plans,omitempty"`
	Versions   []VersionRef `json:"versions"`
}

// Plan is a rate-limit plan of a product.
type Plan struct {
	Name              string `json:"name"`
	RequestsPerSecond int    `json:"requestsPerSecond,omitempty"`
	RequestsPerMinute int    `json:"requestsPerMinute,omitempty"`
	RequestsPerDay    int    `json:"requestsPerDay,omitempty"`
	// RequestsPerMonth is the quota.
	RequestsPerMonth int `json:"requestsPerMonth,omitempty"`
}

// Limited tells whether the plan limits anything.
func (p Plan) Limited() bool {
	return p.RequestsPerSecond > 0 || p.RequestsPerMinute > 0 || p.RequestsPerDay > 0 || p.RequestsPerMonth > 0
}

// VersionRef is one published version: its document and where the gateway serves it.
type VersionRef struct {
	Version string `json:"version"`
	// Spec is the document's file, relative to the catalog folder.
	Spec string `json:"spec"`
	// Path is the gateway's base path of this version (e.g. /payments/v1).
	Path string `json:"path"`
}

// Consumer is an application allowed to call products: a Keycloak client, on a plan.
type Consumer struct {
	ClientID string   `json:"clientId"`
	Owner    string   `json:"owner,omitempty"`
	Plan     string   `json:"plan"`
	Products []string `json:"products"`
}

// Catalog is the loaded catalog.
type Catalog struct {
	Entries   []*Entry
	Consumers []Consumer
	// GatewayURL is the manifest's: where "Try it out" sends requests.
	GatewayURL string
	byName     map[string]*Entry
	index      map[string][]int32 // token -> operation ids (sorted)
	tokens     []string           // the index's tokens, sorted (prefix ranges)
	ops        []Hit
	diffs      diffCache
}

// Entry is a product with its loaded versions (in the manifest's order: oldest first).
type Entry struct {
	Product
	Loaded []*Version `json:"-"`
}

// Version is a loaded document.
type Version struct {
	VersionRef
	Title, Description, OpenAPI string
	Doc                         *openapi3.T
	// JSON is the document with every $ref resolved into it, as served to Swagger UI.
	JSON       []byte
	Operations []Operation
}

// Operation is one operation of a document.
type Operation struct {
	Method      string   `json:"method"`
	Path        string   `json:"path"`
	OperationID string   `json:"operationId,omitempty"`
	Summary     string   `json:"summary,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Deprecated  bool     `json:"deprecated,omitempty"`
}

// Hit is a search result.
type Hit struct {
	Product    string `json:"product"`
	Version    string `json:"version"`
	Visibility string `json:"visibility"`
	Operation
}

// Limits on what a document may bring in: one file (the document or a file it references) and
// a gzipped document once decompressed.
const (
	MaxDocumentBytes     = 32 << 20
	MaxDecompressedBytes = 64 << 20
)

// LoadSpec reads and validates an OpenAPI document, resolving its $refs. A reference may name
// only a file in the document's own folder (or below it): URLs, absolute paths and paths that
// leave the folder (.., symbolic links) are refused naming the reference, so a document cannot
// make the catalog fetch from the network or publish a local file. Examples and defaults are not
// checked against their schemas: published documents (Kubernetes' own among them) often carry
// ones that do not match, which break nothing at the gateway.
func LoadSpec(ctx context.Context, path string) (*openapi3.T, error) {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer root.Close()
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = true
	loader.Context = ctx
	loader.ReadFromURIFunc = func(_ *openapi3.Loader, u *url.URL) ([]byte, error) { return readInFolder(root, dir, u) }
	var doc *openapi3.T
	if strings.HasSuffix(path, ".gz") { // a self-contained document, gzipped (the gateway's ConfigMap)
		var raw []byte
		if raw, err = gunzip(root, filepath.Base(path)); err == nil {
			doc, err = loader.LoadFromDataWithPath(raw, &url.URL{Path: filepath.ToSlash(path)})
		}
	} else {
		doc, err = loader.LoadFromFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable OpenAPI document: %w", path, err)
	}
	if err := doc.Validate(ctx, openapi3.DisableExamplesValidation(), openapi3.DisableSchemaDefaultsValidation()); err != nil {
		return nil, fmt.Errorf("%s: invalid OpenAPI document: %s", path, brief(err))
	}
	return doc, nil
}

// readInFolder reads a referenced file: a relative path inside dir, through root (which refuses
// to leave it), at most MaxDocumentBytes.
func readInFolder(root *os.Root, dir string, u *url.URL) ([]byte, error) {
	if u.Scheme != "" || u.Host != "" || u.Opaque != "" {
		return nil, fmt.Errorf("reference %q: only files in the document's folder may be referenced; bundle the referenced document into it", u.String())
	}
	p := filepath.FromSlash(u.Path)
	if !filepath.IsAbs(p) {
		var err error
		if p, err = filepath.Abs(p); err != nil {
			return nil, err
		}
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("reference %q: outside the document's folder; only files in it may be referenced", u.Path)
	}
	f, err := root.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", u.Path, err)
	}
	defer f.Close()
	return readLimited(f, MaxDocumentBytes, "reference "+strconv.Quote(u.Path))
}

// readLimited reads r, refusing more than max bytes.
func readLimited(r io.Reader, max int64, what string) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > max {
		return nil, fmt.Errorf("%s: larger than %d MiB", what, max>>20)
	}
	return raw, nil
}

func gunzip(root *os.Root, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return readLimited(r, MaxDecompressedBytes, "decompressed document")
}

// brief is the first lines of a validation error, without the schemas it dumps.
func brief(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\nSchema:")
	if len(msg) > 500 {
		msg = msg[:500] + "..."
	}
	return msg
}

// Load reads the manifest in dir and every document it names.
func Load(ctx context.Context, dir string) (*Catalog, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "catalog.json"))
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("catalog.json: %w", err)
	}
	return Build(ctx, dir, m)
}

// Build loads the documents of m (paths relative to dir) and indexes them.
func Build(ctx context.Context, dir string, m Manifest) (*Catalog, error) {
	c := &Catalog{Consumers: m.Consumers, GatewayURL: m.GatewayURL, byName: map[string]*Entry{}, index: map[string][]int32{}}
	for _, p := range m.Products {
		if c.byName[p.Name] != nil {
			return nil, fmt.Errorf("product %q: listed twice", p.Name)
		}
		e := &Entry{Product: p}
		for _, ref := range p.Versions {
			doc, err := LoadSpec(ctx, filepath.Join(dir, ref.Spec))
			if err != nil {
				return nil, fmt.Errorf("product %s version %s: %w", p.Name, ref.Version, err)
			}
			v := &Version{VersionRef: ref, Doc: doc, OpenAPI: doc.OpenAPI}
			if doc.Info != nil {
				v.Title, v.Description = doc.Info.Title, doc.Info.Description
			}
			// The served copy has its references inside: Swagger UI fetches one document.
			served := *doc
			served.InternalizeRefs(ctx, nil)
			if m.GatewayURL != "" {
				served.Servers = openapi3.Servers{{URL: strings.TrimSuffix(m.GatewayURL, "/") + ref.Path, Description: "the gateway"}}
			}
			if v.JSON, err = json.Marshal(&served); err != nil {
				return nil, fmt.Errorf("product %s version %s: %w", p.Name, ref.Version, err)
			}
			v.Operations = operations(doc)
			for _, op := range v.Operations {
				c.add(Hit{Product: p.Name, Version: ref.Version, Visibility: p.Visibility, Operation: op}, p)
			}
			e.Loaded = append(e.Loaded, v)
		}
		c.Entries = append(c.Entries, e)
		c.byName[p.Name] = e
	}
	sort.Slice(c.Entries, func(i, j int) bool { return c.Entries[i].Name < c.Entries[j].Name })
	c.tokens = slices.Sorted(maps.Keys(c.index))
	return c, nil
}

func operations(doc *openapi3.T) []Operation {
	var out []Operation
	if doc.Paths == nil {
		return nil
	}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		methods := item.Operations()
		for _, method := range slices.Sorted(maps.Keys(methods)) {
			op := methods[method]
			out = append(out, Operation{Method: method, Path: path, OperationID: op.OperationID, Summary: op.Summary, Tags: op.Tags, Deprecated: op.Deprecated})
		}
	}
	return out
}

// tokens splits text into lower-case words (letters and digits), for the index and queries.
func tokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
}

func (c *Catalog) add(h Hit, p Product) {
	id := int32(len(c.ops))
	c.ops = append(c.ops, h)
	seen := map[string]bool{}
	text := strings.Join(append([]string{p.Name, p.Title, h.Method, h.Path, h.OperationID, h.Summary}, h.Tags...), " ")
	for _, tok := range tokens(text) {
		if !seen[tok] {
			seen[tok] = true
			c.index[tok] = append(c.index[tok], id)
		}
	}
}

// Query limits: a query longer or with more words is refused (ErrQuery), so one request cannot
// hold a core for seconds.
const (
	MaxQueryBytes = 256
	MaxQueryWords = 8
)

// ErrQuery is a query over the limits.
var ErrQuery = fmt.Errorf("query too long: at most %d characters and %d words", MaxQueryBytes, MaxQueryWords)

// Search finds operations whose product, path, method, operation id, summary or tags hold every
// word of q (a word matches the words it begins), best first by product and version; internal
// products only when internal is set. At most limit hits; ErrQuery for a query over the limits.
func (c *Catalog) Search(q string, internal bool, limit int) ([]Hit, error) {
	if len(q) > MaxQueryBytes {
		return nil, ErrQuery
	}
	words := tokens(q)
	if len(words) > MaxQueryWords {
		return nil, ErrQuery
	}
	if len(words) == 0 {
		return nil, nil
	}
	var ids []int32
	for i, w := range words {
		var match []int32
		// The tokens that begin with w are one range of the sorted tokens.
		for j, _ := slices.BinarySearch(c.tokens, w); j < len(c.tokens) && strings.HasPrefix(c.tokens[j], w); j++ {
			match = append(match, c.index[c.tokens[j]]...)
		}
		slices.Sort(match)
		match = slices.Compact(match)
		if i == 0 {
			ids = match
		} else {
			ids = intersect(ids, match)
		}
		if len(ids) == 0 {
			return nil, nil
		}
	}
	var out []Hit
	for _, id := range ids {
		if h := c.ops[id]; internal || h.Visibility == "external" {
			out = append(out, h)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

func intersect(a, b []int32) []int32 {
	var out []int32
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] == b[j]:
			out = append(out, a[i])
			i, j = i+1, j+1
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return out
}

// Product is the entry named name.
func (c *Catalog) Product(name string) (*Entry, bool) {
	e, ok := c.byName[name]
	return e, ok
}

// Version is a product's version.
func (e *Entry) Version(v string) (*Version, bool) {
	for _, x := range e.Loaded {
		if x.Version == v {
			return x, true
		}
	}
	return nil, false
}
