package catalog

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config of the portal and admin API.
type Config struct {
	Catalog *Catalog
	// Issuer is the Keycloak realm's URL; ClientID the portal's client there (an identity tool:
	// public, PKCE) and ClientSecret its secret when it is confidential.
	Issuer, ClientID, ClientSecret string
	// PublicURL is where people reach the portal (the redirect URI is PublicURL/callback).
	PublicURL string
	// AdminRole (default admin) is the portal client's role of API administrators: they see
	// internal products, consumers and plans. Only the portal client's own roles count.
	AdminRole string
	// SessionKey seals session cookies (32 random bytes or more, from a Secret).
	SessionKey []byte
	// SwaggerUIDir holds swagger-ui-dist (served under /swagger-ui/); required.
	SwaggerUIDir string
	// HTTPClient talks to Keycloak (its CA).
	HTTPClient *http.Client
	// RecheckEvery (default 1 minute, shorter than the realm's access tokens) is how often a
	// session is confirmed with the realm: roles follow the realm and a session ended there
	// (logout, a disabled user) ends here.
	RecheckEvery time.Duration
	// SessionLifetime (default 8 hours) ends a session whatever the realm says.
	SessionLifetime time.Duration
	// Log receives the security events (login, logout, refused requests, admin access) as
	// structured lines; never a token. Default: JSON on standard error.
	Log *slog.Logger
}

//go:embed templates/*.html static/*
var files embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{"join": strings.Join, "dec": func(i int) int { return i - 1 }}).
	ParseFS(files, "templates/*.html"))

type server struct {
	cfg        Config
	oauth      oauth2.Config
	idTokens   *oidc.IDTokenVerifier
	access     *oidc.IDTokenVerifier
	endSession string
	secure     bool
	cookies    sealer
	revoked    revoked
	csp        string
}

// NewServer discovers the issuer and returns the portal's handler.
func NewServer(ctx context.Context, cfg Config) (http.Handler, error) {
	switch {
	case cfg.Catalog == nil:
		return nil, errors.New("catalog: required")
	case len(cfg.SessionKey) < 32:
		return nil, errors.New("session key: at least 32 bytes")
	case cfg.ClientID == "":
		return nil, errors.New("client id: the portal's Keycloak client")
	case cfg.SwaggerUIDir == "":
		return nil, errors.New("swagger-ui: the folder of swagger-ui-dist is required (an empty one would serve the working directory)")
	}
	if st, err := os.Stat(cfg.SwaggerUIDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("swagger-ui %s: not a folder of swagger-ui-dist", cfg.SwaggerUIDir)
	}
	cfg.AdminRole = cmp.Or(cfg.AdminRole, "admin")
	cfg.RecheckEvery = cmp.Or(cfg.RecheckEvery, time.Minute)
	cfg.SessionLifetime = cmp.Or(cfg.SessionLifetime, 8*time.Hour)
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", cfg.Issuer, err)
	}
	var discovery struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = provider.Claims(&discovery)
	cookies, err := newSealer(cfg.SessionKey)
	if err != nil {
		return nil, err
	}
	public := strings.TrimSuffix(cfg.PublicURL, "/")
	s := &server{cfg: cfg, secure: strings.HasPrefix(public, "https://"), cookies: cookies, endSession: discovery.EndSession,
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: provider.Endpoint(),
			RedirectURL: public + "/callback", Scopes: []string{oidc.ScopeOpenID, "profile"}},
		idTokens: provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		// Access tokens: the client is checked on azp or aud (accessSession), as Keycloak puts
		// the requesting client in azp.
		access: provider.Verifier(&oidc.Config{SkipClientIDCheck: true}),
		csp:    contentSecurityPolicy(cfg.Catalog.GatewayURL),
	}
	static, _ := fs.Sub(files, "static")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("GET /callback", s.callback)
	mux.HandleFunc("GET /logout", s.logout)
	mux.Handle("GET /static/", http.StripPrefix("/static/", fileServer(static)))
	mux.Handle("GET /swagger-ui/", http.StripPrefix("/swagger-ui/", fileServer(os.DirFS(cfg.SwaggerUIDir))))
	page := func(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc { return s.authed(h, false) }
	api := func(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc { return s.authed(h, true) }
	mux.HandleFunc("GET /{$}", page(s.index))
	mux.HandleFunc("GET /search", page(s.searchPage))
	mux.HandleFunc("GET /admin", page(s.adminOnly(s.admin)))
	mux.HandleFunc("GET /products/{name}", page(s.productPage))
	mux.HandleFunc("GET /products/{name}/diff", page(s.diffPage))
	mux.HandleFunc("GET /products/{name}/{version}", page(s.swaggerPage))
	mux.HandleFunc("GET /api/products", api(s.apiProducts))
	mux.HandleFunc("GET /api/products/{name}", api(s.apiProduct))
	mux.HandleFunc("GET /api/products/{name}/versions/{version}/openapi.json", api(s.apiDocument))
	mux.HandleFunc("GET /api/products/{name}/diff", api(s.apiDiff))
	mux.HandleFunc("GET /api/search", api(s.apiSearch))
	mux.HandleFunc("GET /api/consumers", api(s.adminOnly(s.apiConsumers)))
	mux.HandleFunc("GET /api/plans", api(s.adminOnly(s.apiPlans)))
	return s.securityHeaders(mux), nil
}

// HTTPServer serves h on addr with every timeout set: a client cannot hold a connection open by
// sending slowly, reading slowly or idling.
func HTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 2 * time.Minute, IdleTimeout: time.Minute, MaxHeaderBytes: 32 << 10}
}

// fileServer serves the files of fsys, never a directory listing.
func fileServer(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" || strings.HasSuffix(name, "/") {
			http.NotFound(w, r)
			return
		}
		if st, err := fs.Stat(fsys, name); err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy: scripts and styles from the portal only (Swagger UI's initializer is a
// file of ours, not inline); requests from the page to the portal and, for Swagger UI's
// "Try it out", to the gateway.
func contentSecurityPolicy(gatewayURL string) string {
	connect := "'self'"
	if u, err := url.Parse(gatewayURL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		connect += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src " + connect +
		"; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
}

// securityHeaders: no framing, no sniffing, no referrer, the CSP, HSTS on HTTPS.
func (s *server) securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", s.csp)
		if s.secure {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		h.ServeHTTP(w, r)
	})
}

// event logs a security event: what, who, why, and the request's method, path and client.
func (s *server) event(r *http.Request, what, user string, detail any) {
	s.cfg.Log.Info("security", "event", what, "user", user, "detail", detail, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
}

// authed admits a valid session cookie (pages and API) or a bearer access token for the catalog
// (API); pages without one go to the login, API calls get 401. Authenticated answers are never
// cached.
func (s *server) authed(h func(http.ResponseWriter, *http.Request, session), isAPI bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if sess, ok := s.currentSession(w, r); ok {
			h(w, r, sess)
			return
		}
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && isAPI {
			sess, err := s.accessSession(r.Context(), bearer)
			if err == nil {
				h(w, r, sess)
				return
			}
			s.event(r, "denied", "", "bearer token refused: "+err.Error())
			w.Header().Set("WWW-Authenticate", `Bearer realm="kplane-catalog", error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		if isAPI {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kplane-catalog"`)
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
	}
}

func (s *server) adminOnly(h func(http.ResponseWriter, *http.Request, session)) func(http.ResponseWriter, *http.Request, session) {
	return func(w http.ResponseWriter, r *http.Request, sess session) {
		if !sess.Admin {
			s.event(r, "denied", sess.User, "not an API administrator")
			http.Error(w, "API administrators only (role "+s.cfg.AdminRole+")", http.StatusForbidden)
			return
		}
		s.event(r, "admin", sess.User, "")
		h(w, r, sess)
	}
}

// visible: developers see external products only; administrators everything.
func (s *server) visible(sess session, name string) (*Entry, bool) {
	e, ok := s.cfg.Catalog.Product(name)
	if !ok || (e.Visibility != "external" && !sess.Admin) {
		return nil, false
	}
	return e, true
}

func (s *server) products(sess session) []*Entry {
	var out []*Entry
	for _, e := range s.cfg.Catalog.Entries {
		if e.Visibility == "external" || sess.Admin {
			out = append(out, e)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *server) render(w http.ResponseWriter, name string, sess session, data map[string]any) {
	data["Session"] = sess
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		http.Error(w, "page: "+err.Error(), http.StatusInternalServerError)
	}
}

func (s *server) index(w http.ResponseWriter, r *http.Request, sess session) {
	s.render(w, "index.html", sess, map[string]any{"Products": s.products(sess)})
}

func (s *server) searchPage(w http.ResponseWriter, r *http.Request, sess session) {
	q := r.URL.Query().Get("q")
	hits, err := s.cfg.Catalog.Search(q, sess.Admin, 200)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.render(w, "search.html", sess, map[string]any{"Query": q, "Hits": hits})
}

func (s *server) admin(w http.ResponseWriter, r *http.Request, sess session) {
	s.render(w, "admin.html", sess, map[string]any{"Products": s.cfg.Catalog.Entries, "Consumers": s.cfg.Catalog.Consumers})
}

func (s *server) productPage(w http.ResponseWriter, r *http.Request, sess session) {
	e, ok := s.visible(sess, r.PathValue("name"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.render(w, "product.html", sess, map[string]any{"Product": e})
}

// diff is the report the request asks for (product in the path, from and to in the query);
// false when it answered with an error.
func (s *server) diff(w http.ResponseWriter, r *http.Request, sess session) (*Entry, *Report, bool) {
	e, ok := s.visible(sess, r.PathValue("name"))
	if !ok {
		http.NotFound(w, r)
		return nil, nil, false
	}
	rep, err := s.cfg.Catalog.Diff(r.Context(), e.Name, r.URL.Query().Get("from"), r.URL.Query().Get("to"))
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		http.Error(w, "the comparison did not finish in time: try again", http.StatusServiceUnavailable)
		return nil, nil, false
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, false
	}
	return e, rep, true
}

// version is the product and version of the request's path; false when it answered 404.
func (s *server) version(w http.ResponseWriter, r *http.Request, sess session) (*Entry, *Version, bool) {
	e, ok := s.visible(sess, r.PathValue("name"))
	if !ok {
		http.NotFound(w, r)
		return nil, nil, false
	}
	v, ok := e.Version(r.PathValue("version"))
	if !ok {
		http.NotFound(w, r)
		return nil, nil, false
	}
	return e, v, true
}

func (s *server) diffPage(w http.ResponseWriter, r *http.Request, sess session) {
	if e, rep, ok := s.diff(w, r, sess); ok {
		s.render(w, "diff.html", sess, map[string]any{"Product": e, "Report": rep})
	}
}

func (s *server) swaggerPage(w http.ResponseWriter, r *http.Request, sess session) {
	e, v, ok := s.version(w, r, sess)
	if !ok {
		return
	}
	s.render(w, "swagger.html", sess, map[string]any{"Product": e, "Version": v,
		"DocURL": "/api/products/" + url.PathEscape(e.Name) + "/versions/" + url.PathEscape(v.Version) + "/openapi.json"})
}

// productView is a product in the API: its versions without the documents.
type productView struct {
	Product
	Operations map[string]int `json:"operations"`
}

func view(e *Entry) productView {
	pv := productView{Product: e.Product, Operations: map[string]int{}}
	for _, v := range e.Loaded {
		pv.Operations[v.Version] = len(v.Operations)
	}
	return pv
}

func (s *server) apiProducts(w http.ResponseWriter, r *http.Request, sess session) {
	out := []productView{}
	for _, e := range s.products(sess) {
		out = append(out, view(e))
	}
	writeJSON(w, out)
}

func (s *server) apiProduct(w http.ResponseWriter, r *http.Request, sess session) {
	e, ok := s.visible(sess, r.PathValue("name"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, view(e))
}

func (s *server) apiDocument(w http.ResponseWriter, r *http.Request, sess session) {
	_, v, ok := s.version(w, r, sess)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(v.JSON)
}

func (s *server) apiDiff(w http.ResponseWriter, r *http.Request, sess session) {
	if _, rep, ok := s.diff(w, r, sess); ok {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(rep.JSON())
	}
}

func (s *server) apiSearch(w http.ResponseWriter, r *http.Request, sess session) {
	hits, err := s.cfg.Catalog.Search(r.URL.Query().Get("q"), sess.Admin, 200)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if hits == nil {
		hits = []Hit{}
	}
	writeJSON(w, hits)
}

func (s *server) apiConsumers(w http.ResponseWriter, r *http.Request, sess session) {
	writeJSON(w, s.cfg.Catalog.Consumers)
}

func (s *server) apiPlans(w http.ResponseWriter, r *http.Request, sess session) {
	plans := map[string][]Plan{}
	for _, e := range s.cfg.Catalog.Entries {
		plans[e.Name] = e.Plans
	}
	writeJSON(w, plans)
}
