package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/oasdiff/oasdiff/checker"
	"github.com/oasdiff/oasdiff/diff"
	"github.com/oasdiff/oasdiff/load"
)

// Change is one difference between two versions.
type Change struct {
	ID        string `json:"id"`
	Level     string `json:"level"`
	Breaking  bool   `json:"breaking"`
	Operation string `json:"operation,omitempty"`
	Path      string `json:"path,omitempty"`
	Text      string `json:"text"`
}

// Report is the comparison of two versions of a product.
type Report struct {
	Product  string   `json:"product"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Breaking int      `json:"breaking"`
	Changes  []Change `json:"changes"`

	encode  sync.Once
	encoded []byte
}

// JSON is the report as the API serves it, encoded once: a report never changes once computed,
// and a large one (thousands of changes) costs more to encode than anything else a request does.
func (r *Report) JSON() []byte {
	r.encode.Do(func() {
		raw, err := json.Marshal(r)
		if err != nil { // plain strings and numbers: cannot happen
			raw = []byte(`{"error":"the report could not be encoded"}`)
		}
		r.encoded = append(raw, '\n')
	})
	return r.encoded
}

// Diff compares two versions of a product (oasdiff's checks): what a client of from meets in to.
// Reports are computed once per pair and kept (the documents never change while the catalog
// runs); at most MaxConcurrentDiffs are computed at once, and a caller whose ctx ends stops
// waiting (the computation finishes for the cache).
func (c *Catalog) Diff(ctx context.Context, product, from, to string) (*Report, error) {
	e, ok := c.byName[product]
	if !ok {
		return nil, fmt.Errorf("no product %q", product)
	}
	a, ok := e.Version(from)
	if !ok {
		return nil, fmt.Errorf("product %s has no version %q", product, from)
	}
	b, ok := e.Version(to)
	if !ok {
		return nil, fmt.Errorf("product %s has no version %q", product, to)
	}
	return c.diffs.get(ctx, product+"\x00"+from+"\x00"+to, func() (*Report, error) { return compare(product, a, b) })
}

func compare(product string, a, b *Version) (*Report, error) {
	from, to := a.Version, b.Version
	s1, s2 := &load.SpecInfo{Url: a.Spec, Spec: a.Doc, Version: from}, &load.SpecInfo{Url: b.Spec, Spec: b.Doc, Version: to}
	d, sources, err := diff.GetWithOperationsSourcesMap(diff.NewConfig(), s1, s2)
	if err != nil {
		return nil, fmt.Errorf("diff %s %s..%s: %w", product, from, to, err)
	}
	changes := checker.CheckBackwardCompatibilityUntilLevel(checker.NewConfig(checker.GetAllChecks()), d, sources, checker.INFO)
	l := checker.NewDefaultLocalizer()
	r := &Report{Product: product, From: from, To: to, Changes: []Change{}}
	for _, ch := range changes {
		r.Changes = append(r.Changes, Change{ID: ch.GetId(), Level: ch.GetLevel().String(), Breaking: ch.IsBreaking(), Operation: ch.GetOperation(),
			Path: ch.GetPath(), Text: ch.GetUncolorizedText(l)})
		if ch.IsBreaking() {
			r.Breaking++
		}
	}
	sort.SliceStable(r.Changes, func(i, j int) bool { return r.Changes[i].Breaking && !r.Changes[j].Breaking })
	return r, nil
}

// MaxConcurrentDiffs bounds the diffs computed at once (a large pair takes hundreds of MB).
const MaxConcurrentDiffs = 2

// diffCache computes each report once, at most MaxConcurrentDiffs at a time.
type diffCache struct {
	mu      sync.Mutex
	entries map[string]*diffEntry
	slots   chan struct{}
}

type diffEntry struct {
	done   chan struct{}
	report *Report
	err    error
}

func (d *diffCache) get(ctx context.Context, key string, compute func() (*Report, error)) (*Report, error) {
	d.mu.Lock()
	if d.entries == nil {
		d.entries, d.slots = map[string]*diffEntry{}, make(chan struct{}, MaxConcurrentDiffs)
	}
	e, ok := d.entries[key]
	if !ok {
		e = &diffEntry{done: make(chan struct{})}
		d.entries[key] = e
		go func() {
			d.slots <- struct{}{}
			e.report, e.err = compute()
			<-d.slots
			close(e.done)
		}()
	}
	d.mu.Unlock()
	select {
	case <-e.done:
		return e.report, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
