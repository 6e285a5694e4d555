package catalog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// portal is the portal under attack: a catalog behind the test IdP, with its security log.
type portal struct {
	*httptest.Server
	idp *testIdP
	log *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newPortal(t *testing.T, recheck time.Duration) *portal {
	t.Helper()
	c, err := Build(context.Background(), "testdata", testManifest())
	require.NoError(t, err)
	idp := newTestIdP(t, "api-catalog")
	swagger := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(swagger, "swagger-ui.css"), []byte("body{}"), 0o644))
	p := &portal{idp: idp, log: &syncBuffer{}}
	h, err := NewServer(context.Background(), Config{Catalog: c, Issuer: idp.URL, ClientID: "api-catalog", PublicURL: "https://portal.example.com",
		SessionKey: bytes.Repeat([]byte("k"), 32), SwaggerUIDir: swagger, RecheckEvery: recheck, Log: slog.New(slog.NewJSONHandler(p.log, nil))})
	require.NoError(t, err)
	p.Server = httptest.NewTLSServer(h) // the session cookie is Secure (an https public URL)
	t.Cleanup(p.Close)
	return p
}

// get requests path with a bearer token (if any) and returns the status and body.
func (p *portal) get(t *testing.T, client *http.Client, path, bearer string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.URL+path, nil)
	require.NoError(t, err)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// browser is a client of the portal that keeps cookies and does not follow redirects.
func (p *portal) browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, Transport: p.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login runs the code flow from /login?next=next and returns where the portal sends the browser.
func (p *portal) login(t *testing.T, b *http.Client, next string) string {
	t.Helper()
	resp, err := b.Get(p.URL + "/login?next=" + url.QueryEscape(next))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	resp, err = b.Get(resp.Header.Get("Location")) // the IdP answers with the callback
	require.NoError(t, err)
	resp.Body.Close()
	// The IdP sends the browser to the public URL's callback: the test's portal answers it.
	callback, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	resp, err = b.Get(p.URL + "/callback?" + callback.RawQuery)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode, "the login completes")
	return resp.Header.Get("Location")
}

func TestPortalRefusesTokensNotForIt(t *testing.T) {
	p := newPortal(t, time.Minute)
	idp, c := p.idp, p.Client()
	catalogAdmin := idp.sign(idp.key, idp.accessClaims("api-catalog", nil, []string{"admin"}))
	cases := []struct {
		name, token string
		want        int
	}{
		{"signed by another key", idp.sign(idp.other, idp.accessClaims("api-catalog", nil, []string{"admin"})), 401},
		{"another tool's token", idp.sign(idp.key, idp.accessClaims("grafana", nil, []string{"admin"})), 401},
		{"the cluster login's ID token", idp.sign(idp.key, map[string]any{"typ": "ID", "aud": "kubernetes", "azp": "kubernetes"}), 401},
		{"an ID token of the catalog used as a bearer", idp.sign(idp.key, map[string]any{"typ": "ID", "aud": "api-catalog", "azp": "api-catalog"}), 401},
		{"no type", idp.sign(idp.key, map[string]any{"azp": "api-catalog"}), 401},
		{"expired", idp.sign(idp.key, map[string]any{"typ": "Bearer", "azp": "api-catalog", "exp": time.Now().Add(-time.Hour).Unix()}), 401},
		{"another issuer", idp.sign(idp.key, map[string]any{"typ": "Bearer", "azp": "api-catalog", "iss": "https://evil.example"}), 401},
		{"the catalog's developer", idp.sign(idp.key, idp.accessClaims("api-catalog", nil, nil)), 200},
		{"another tool's token for the catalog's audience", idp.sign(idp.key, idp.accessClaims("shop-web", []string{"api-catalog"}, nil)), 200},
	}
	for _, tc := range cases {
		code, _ := p.get(t, c, "/api/products", tc.token)
		assert.Equal(t, tc.want, code, tc.name)
	}
	// Roles: only the catalog client's. A top-level "roles" claim of another tool grants nothing.
	otherAdmin := idp.accessClaims("grafana", []string{"api-catalog"}, nil)
	otherAdmin["roles"] = []string{"admin"}
	otherAdmin["realm_access"] = map[string]any{"roles": []string{"admin"}}
	code, _ := p.get(t, c, "/api/consumers", idp.sign(idp.key, otherAdmin))
	assert.Equal(t, http.StatusForbidden, code, "another tool's admin role")
	code, body := p.get(t, c, "/api/consumers", catalogAdmin)
	assert.Equal(t, http.StatusOK, code, body)
	log := p.log.String()
	assert.Contains(t, log, `"event":"denied"`)
	assert.Contains(t, log, `"event":"admin"`)
	for _, tc := range cases {
		assert.NotContains(t, log, tc.token, "the log never holds a token")
	}
}

func TestPortalSessions(t *testing.T) {
	p := newPortal(t, 50*time.Millisecond)
	p.idp.setRoles("admin")
	b := p.browser(t)
	assert.Equal(t, "/admin", p.login(t, b, "/admin"))
	code, _ := p.get(t, b, "/api/consumers", "")
	assert.Equal(t, http.StatusOK, code, "the administrator's session")

	// The realm takes the role away: the session follows at its next check.
	p.idp.setRoles()
	time.Sleep(100 * time.Millisecond)
	code, _ = p.get(t, b, "/api/consumers", "")
	assert.Equal(t, http.StatusForbidden, code, "roles re-read from the realm")
	code, _ = p.get(t, b, "/api/products", "")
	assert.Equal(t, http.StatusOK, code)

	// The realm ends the session (the user was disabled): the portal's ends too.
	p.idp.endSessions()
	time.Sleep(100 * time.Millisecond)
	code, _ = p.get(t, b, "/api/products", "")
	assert.Equal(t, http.StatusUnauthorized, code, "a session the realm ended")

	// Logout is effective server-side: a copied cookie of the session no longer works.
	p2 := newPortal(t, time.Hour)
	b = p2.browser(t)
	p2.login(t, b, "/")
	u, _ := url.Parse(p2.URL)
	copied := b.Jar.Cookies(u)
	require.NotEmpty(t, copied)
	thief := p2.browser(t)
	thief.Jar.SetCookies(u, copied)
	code, _ = p2.get(t, thief, "/api/products", "")
	require.Equal(t, http.StatusOK, code, "the copied cookie works while the session lives")
	resp, err := b.Get(p2.URL + "/logout")
	require.NoError(t, err)
	resp.Body.Close()
	code, _ = p2.get(t, thief, "/api/products", "")
	assert.Equal(t, http.StatusUnauthorized, code, "a copied cookie after logout")
	assert.Empty(t, p2.idp.sessions, "the realm's session was ended too")
	log := p2.log.String()
	assert.Contains(t, log, `"event":"login"`)
	assert.Contains(t, log, `"event":"logout"`)
	for _, c := range copied {
		assert.NotContains(t, log, c.Value)
	}
}

func TestPortalRedirectsOnlyToItself(t *testing.T) {
	for next, want := range map[string]string{
		"/products/orders?x=1": "/products/orders?x=1",
		"/\\evil.example":      "/",
		"/\t/evil.example":     "/",
		"//evil.example":       "/",
		"https://evil.example": "/",
		"/\\/evil.example":     "/",
		"/%0d%0aSet-Cookie:x":  "/%0d%0aSet-Cookie:x", // still a path of the portal
		"evil.example":         "/",
		"":                     "/",
		"/\x00":                "/",
	} {
		assert.Equal(t, want, SafeNext(next), "%q", next)
	}
	p := newPortal(t, time.Minute)
	assert.Equal(t, "/", p.login(t, p.browser(t), "/\\evil.example"), "the login lands on the portal")
}

func TestPortalBoundsWork(t *testing.T) {
	p := newPortal(t, time.Minute)
	token := p.idp.sign(p.idp.key, p.idp.accessClaims("api-catalog", nil, nil))
	start := time.Now()
	code, body := p.get(t, p.Client(), "/api/search?q="+strings.Repeat("a", 40<<10), token)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "query too long")
	code, _ = p.get(t, p.Client(), "/api/search?q="+url.QueryEscape(strings.Repeat("o ", 9)), token)
	assert.Equal(t, http.StatusBadRequest, code, "nine words")
	code, _ = p.get(t, p.Client(), "/search?q="+strings.Repeat("a", 300), token)
	assert.NotEqual(t, http.StatusOK, code)
	t.Logf("oversized queries refused in %s", time.Since(start))
	code, _ = p.get(t, p.Client(), "/api/search?q=order", token)
	assert.Equal(t, http.StatusOK, code)

	// Diffs: computed once per pair, at most MaxConcurrentDiffs at a time, and a caller that goes
	// away stops waiting.
	var d diffCache
	var running, peak, computed atomic.Int32
	slow := func() (*Report, error) {
		n := running.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		computed.Add(1)
		time.Sleep(30 * time.Millisecond)
		running.Add(-1)
		return &Report{}, nil
	}
	var wg sync.WaitGroup
	for i := range 8 {
		for range 3 {
			wg.Go(func() {
				_, err := d.get(context.Background(), string(rune('a'+i)), slow)
				assert.NoError(t, err)
			})
		}
	}
	wg.Wait()
	assert.EqualValues(t, 8, computed.Load(), "one computation per pair, whatever the callers")
	assert.LessOrEqual(t, peak.Load(), int32(MaxConcurrentDiffs))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := d.get(ctx, "new pair", slow)
	assert.True(t, errors.Is(err, context.Canceled), "a caller that went away")
	c, err := Build(context.Background(), "testdata", testManifest())
	require.NoError(t, err)
	r1, err := c.Diff(context.Background(), "orders", "v1", "v2")
	require.NoError(t, err)
	r2, err := c.Diff(context.Background(), "orders", "v1", "v2")
	require.NoError(t, err)
	assert.Same(t, r1, r2, "served from the cache")
}

func TestPortalStaticFilesAndHeaders(t *testing.T) {
	p := newPortal(t, time.Minute)
	c := p.Client()
	for _, path := range []string{"/static/..%2ftemplates/layout.html", "/static/%2e%2e%2ftemplates/layout.html", "/static/", "/static/../templates/layout.html",
		"/swagger-ui/", "/swagger-ui/..%2f..%2fetc/passwd", "/static/templates/layout.html"} {
		code, body := p.get(t, c, path, "")
		assert.NotEqual(t, http.StatusOK, code, "%s: %s", path, body)
		assert.NotContains(t, body, "{{define", path)
	}
	code, _ := p.get(t, c, "/static/portal.css", "")
	assert.Equal(t, http.StatusOK, code)
	code, _ = p.get(t, c, "/swagger-ui/swagger-ui.css", "")
	assert.Equal(t, http.StatusOK, code)

	token := p.idp.sign(p.idp.key, p.idp.accessClaims("api-catalog", nil, nil))
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/products", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "max-age=31536000; includeSubDomains", resp.Header.Get("Strict-Transport-Security"), "HTTPS portal")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "connect-src 'self' https://api.example.com;", "Try it out reaches the gateway")

	_, err = NewServer(context.Background(), Config{Catalog: &Catalog{}, Issuer: p.idp.URL, ClientID: "api-catalog", SessionKey: bytes.Repeat([]byte("k"), 32)})
	assert.ErrorContains(t, err, "swagger-ui", "an empty folder would serve the working directory")

	srv := HTTPServer(":0", nil)
	assert.NotZero(t, srv.ReadHeaderTimeout)
	assert.NotZero(t, srv.ReadTimeout)
	assert.NotZero(t, srv.WriteTimeout)
	assert.NotZero(t, srv.IdleTimeout)
}

// TestPortalDropsIdleConnections: a client that opens connections and sends nothing is cut off.
func TestPortalDropsIdleConnections(t *testing.T) {
	srv := HTTPServer("127.0.0.1:0", http.NotFoundHandler())
	srv.ReadHeaderTimeout = 200 * time.Millisecond // the test's; the product's is 10 s
	ts := httptest.NewUnstartedServer(srv.Handler)
	ts.Config = srv
	ts.Start()
	defer ts.Close()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	assert.Error(t, err, "the server closed the silent connection")
}
