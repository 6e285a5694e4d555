package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/identitydemo"
)

// catalogDir is a catalog of real public documents: the Swagger Petstore (OpenAPI 3), Stripe's
// API (4.5 MB), Asana's (internal here), and Kubernetes' batch/v1 of releases 1.35 and 1.37 as two
// versions of one product; the gateway component writes the same layout.
func catalogDir(t *testing.T) string {
	dir := t.TempDir()
	specs := filepath.Join(moduleDir(t, "github.com/pb33f/libopenapi@v0.36.1"), "test_specs")
	copyFile := func(from, to string) {
		raw, err := os.ReadFile(from)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, to), raw, 0o644))
	}
	copyFile(filepath.Join(specs, "petstorev3.json"), "petstore-v3.json")
	copyFile(filepath.Join(specs, "stripe.yaml"), "stripe-2023-10-16.yaml")
	copyFile(filepath.Join(specs, "asana.yaml"), "asana-1.0.yaml")
	for _, v := range []string{"1.35.0", "1.37.2"} {
		copyFile(filepath.Join(moduleDir(t, "k8s.io/kubernetes@v"+v), "api", "openapi-spec", "v3", "apis__batch__v1_openapi.json"), "batch-"+v+".json")
	}
	m := catalog.Manifest{GatewayURL: "https://api.example.com", Products: []catalog.Product{
		{Name: "petstore", Title: "Pet store", Visibility: "external", Owners: []string{"web"}, Plans: []catalog.Plan{{Name: "free", RequestsPerMinute: 60, RequestsPerMonth: 10000}},
			Versions: []catalog.VersionRef{{Version: "v3", Spec: "petstore-v3.json", Path: "/petstore/v3"}}},
		{Name: "stripe", Title: "Payments", Visibility: "external", Owners: []string{"payments"}, Plans: []catalog.Plan{{Name: "gold", RequestsPerSecond: 50, RequestsPerMonth: 1000000}},
			Versions: []catalog.VersionRef{{Version: "2023-10-16", Spec: "stripe-2023-10-16.yaml", Path: "/payments/2023-10-16"}}},
		{Name: "tasks", Title: "Tasks", Visibility: "internal", Owners: []string{"platform"}, Versions: []catalog.VersionRef{{Version: "1.0", Spec: "asana-1.0.yaml", Path: "/tasks/v1"}}},
		{Name: "batch", Title: "Kubernetes batch/v1", Visibility: "external", Owners: []string{"platform"}, Plans: []catalog.Plan{{Name: "free", RequestsPerMinute: 60}},
			Versions: []catalog.VersionRef{{Version: "1.35", Spec: "batch-1.35.0.json", Path: "/batch/1.35"}, {Version: "1.37", Spec: "batch-1.37.2.json", Path: "/batch/1.37"}}},
	}, Consumers: []catalog.Consumer{{ClientID: "shop-web", Owner: "web", Plan: "free", Products: []string{"petstore"}}}}
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "catalog.json"), raw, 0o644))
	return dir
}

// TestCatalogPortal: the catalog service as a local process behind a real Keycloak (the local
// identity of environments/dev, with the portal as its tool "api-catalog"), serving real
// documents. Its admin API answers by role (a developer sees external products only and no
// consumers; an administrator everything), lists versions and the changes between Kubernetes
// 1.35's and 1.37's batch/v1; and its pages render in headless Chromium after a Keycloak login:
// the product list, the changes, and Swagger UI with every operation of the petstore.
func TestCatalogPortal(t *testing.T) {
	integration(t)
	ctx := context.Background()
	port, err := testbed.FreePorts(1)
	require.NoError(t, err)
	portal := fmt.Sprintf("http://127.0.0.1:%d", port)
	li := startLocalIdentity(t, "      - name: api-catalog\n        redirectURIs: ["+portal+"/callback]\n")
	issuer, httpClient := li.issuer, li.client
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, li.ca, 0o600))

	dir := catalogDir(t)
	bin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-catalog")
	out, err := exec.Command(bin, "validate", "--dir", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("%s", out)
	cmd := exec.Command(bin, "serve", "--dir", dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--issuer", issuer, "--client-id", "api-catalog",
		"--public-url", portal, "--swagger-ui", testbed.SwaggerUI(t), "--ca-file", caFile)
	cmd.Env = append(os.Environ(), "KPLANE_CATALOG_SESSION_KEY="+strings.Repeat("k", 32))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); t.Logf("catalog log:\n%s", log.String()) })
	require.Eventually(t, func() bool {
		resp, err := http.Get(portal + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "the catalog serves")

	// The admin API, by role.
	resp, err := http.Get(portal + "/api/products")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token, no catalog")
	redirect := portal + "/callback"
	alice, err := identitydemo.OIDCAccessToken(httpClient, issuer, "api-catalog", redirect, "alice", identitydemo.AlicePassword, false)
	require.NoError(t, err)
	carol, err := identitydemo.OIDCAccessToken(httpClient, issuer, "api-catalog", redirect, "carol", identitydemo.CarolPassword, true)
	require.NoError(t, err)
	call := func(token, path string, into any) int {
		req, _ := http.NewRequest(http.MethodGet, portal+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if into != nil && resp.StatusCode == http.StatusOK {
			require.NoError(t, json.Unmarshal(body, into), "%s", body)
		}
		return resp.StatusCode
	}
	names := func(token string) []string {
		var ps []struct{ Name string }
		require.Equal(t, http.StatusOK, call(token, "/api/products", &ps))
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	// Tokens Keycloak issued for something else are refused: another tool's access token and an
	// ID token of the catalog used as a bearer.
	other, err := identitydemo.OIDCAccessToken(httpClient, issuer, "grafana", "https://127.0.0.1:3000/login/generic_oauth", "alice", identitydemo.AlicePassword, false)
	require.NoError(t, err)
	idToken, err := identitydemo.OIDCLogin(httpClient, issuer, "api-catalog", redirect, "alice", identitydemo.AlicePassword, false)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, call(other, "/api/products", nil), "grafana's access token")
	assert.Equal(t, http.StatusUnauthorized, call(idToken, "/api/products", nil), "an ID token")
	assert.Equal(t, []string{"batch", "petstore", "stripe"}, names(alice), "a developer sees external products")
	assert.Equal(t, []string{"batch", "petstore", "stripe", "tasks"}, names(carol), "an administrator sees internal ones too")
	assert.Equal(t, http.StatusNotFound, call(alice, "/api/products/tasks", nil))
	assert.Equal(t, http.StatusForbidden, call(alice, "/api/consumers", nil))
	var consumers []catalog.Consumer
	assert.Equal(t, http.StatusOK, call(carol, "/api/consumers", &consumers))
	assert.Equal(t, "shop-web", consumers[0].ClientID)
	var report catalog.Report
	require.Equal(t, http.StatusOK, call(alice, "/api/products/batch/diff?from=1.35&to=1.37", &report))
	t.Logf("batch/v1 1.35 -> 1.37: %d changes, %d breaking", len(report.Changes), report.Breaking)
	assert.NotEmpty(t, report.Changes, "Kubernetes changed batch/v1 between the releases")
	var hits []catalog.Hit
	require.Equal(t, http.StatusOK, call(alice, "/api/search?q=pet+find", &hits))
	assert.NotEmpty(t, hits)
	assert.Equal(t, "petstore", hits[0].Product)
	var doc map[string]any
	require.Equal(t, http.StatusOK, call(alice, "/api/products/stripe/versions/2023-10-16/openapi.json", &doc))
	assert.Equal(t, "3.0.0", doc["openapi"])

	// The pages, in Chromium, after a real Keycloak login.
	shots := os.Getenv("KPLANE_SCREENSHOTS") // to keep them; a temporary folder otherwise
	if shots == "" {
		shots = t.TempDir()
	}
	browser := chromium(t)
	shot := func(name string) {
		png, err := chromedp.Run(browser, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644))
	}
	count := func(sel string) int {
		nodes, err := chromedp.Run(browser, chromedp.Nodes(chromedp.CSSAll(sel)))
		require.NoError(t, err)
		return len(nodes)
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	start := time.Now()
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(portal+"/"),
		chromedp.WaitVisible(css("#username")), // Keycloak's login page
		chromedp.SendKeys(css("#username"), "alice"), chromedp.SendKeys(css("#password"), identitydemo.AlicePassword), chromedp.Click(css("#kc-login")),
		chromedp.WaitVisible(css("#products"))))
	productRows := count("#products tbody tr")
	shot("products")
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(portal+"/products/batch/diff?from=1.35&to=1.37"), chromedp.WaitVisible(css("#changes"))))
	summary, err := chromedp.Run(browser, chromedp.Text(css("#summary")))
	require.NoError(t, err)
	changeRows := count("#changes tbody tr")
	shot("changes")
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(portal+"/products/petstore/v3"), chromedp.WaitVisible(css(".opblock"))))
	operations := count(".opblock")
	shot("swagger-ui")
	t.Logf("browser: login and three pages in %.1f s; screenshots in %s", time.Since(start).Seconds(), shots)
	assert.Equal(t, 3, productRows, "the developer's product list")
	assert.Contains(t, summary, "breaking of")
	assert.Equal(t, len(report.Changes), changeRows)
	petstore, err := catalog.LoadSpec(ctx, filepath.Join(dir, "petstore-v3.json"))
	require.NoError(t, err)
	want := 0
	for _, p := range petstore.Paths.Map() {
		want += len(p.Operations())
	}
	assert.Equal(t, want, operations, "Swagger UI shows every operation of the petstore")
	for _, name := range []string{"products", "changes", "swagger-ui"} {
		checkScreenshot(t, filepath.Join(shots, name+".png"))
	}

	// Logout ends the session in the portal: the session cookie copied before it is refused.
	got, err := chromedp.Run(browser, func(ctx context.Context, tgt *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tgt, network.GetCookies, network.GetCookiesParams{URLs: []string{portal}})
	})
	require.NoError(t, err)
	cookies := got.Cookies
	var copied string
	for _, c := range cookies {
		if c.Name == "kplane_portal" {
			copied = c.Value
		}
	}
	require.NotEmpty(t, copied, "the browser holds the portal's session")
	withCookie := func() int {
		req, _ := http.NewRequest(http.MethodGet, portal+"/api/products", nil)
		req.AddCookie(&http.Cookie{Name: "kplane_portal", Value: copied})
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, withCookie(), "the copied cookie works before logout")
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(portal+"/logout")))
	assert.Equal(t, http.StatusUnauthorized, withCookie(), "and not after")
	assert.NotContains(t, log.String(), copied, "the log never holds a session")
	assert.NotContains(t, log.String(), alice, "nor a token")
}

// checkScreenshot: a real page, not a blank or an error page — full size, many colours, and the
// portal's header band (#14325c) across the top.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	b := img.Bounds()
	assert.GreaterOrEqual(t, b.Dx(), 1200, path)
	colours := map[[3]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	assert.Greater(t, len(colours), 30, "%s: a rendered page has many colours", path)
	assert.True(t, near(img, image.Point{X: b.Dx() - 5, Y: 5}, 0x14, 0x32, 0x5c), "%s: the portal's header", path)
}

func near(img image.Image, p image.Point, r, g, b uint32) bool {
	pr, pg, pb, _ := img.At(p.X, p.Y).RGBA()
	d := func(a, b uint32) uint32 {
		if a > b {
			return a - b
		}
		return b - a
	}
	return d(pr>>8, r) < 8 && d(pg>>8, g) < 8 && d(pb>>8, b) < 8
}

// chromium is a headless Chromium (Debian's) for the test: no sandbox (tests run as root here)
// and Keycloak's test certificate accepted.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	require.NoError(t, err, "Debian's chromium (make tools installs it)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.Flag("ignore-certificate-errors", true))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	// The browser lives as long as the context of its first run; later steps get a deadline.
	require.NoError(t, chromedp.Do(ctx))
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	return ctx
}
