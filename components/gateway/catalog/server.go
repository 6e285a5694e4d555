package catalog

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
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
	// AdminRole (default admin) is the client role of API administrators — the identity tool's
	// "admin", in the token's roles claim — or a realm role of that name: they see internal
	// products, consumers and plans.
	AdminRole string
	// SessionKey signs session cookies (32 random bytes, from a Secret).
	SessionKey []byte
	// SwaggerUIDir holds swagger-ui-dist (served under /swagger-ui/).
	SwaggerUIDir string
	// HTTPClient talks to Keycloak (its CA).
	HTTPClient *http.Client
}

//go:embed templates/*.html static/*
var files embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{"join": strings.Join, "dec": func(i int) int { return i - 1 }}).
	ParseFS(files, "templates/*.html"))

type server struct {
	cfg      Config
	oauth    oauth2.Config
	idTokens *oidc.IDTokenVerifier
	access   *oidc.IDTokenVerifier
	secure   bool
}

// session is who is logged in.
type session struct {
	User  string `json:"u"`
	Admin bool   `json:"a"`
	Exp   int64  `json:"e"`
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
	}
	if cfg.AdminRole == "" {
		cfg.AdminRole = "admin"
	}
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", cfg.Issuer, err)
	}
	public := strings.TrimSuffix(cfg.PublicURL, "/")
	s := &server{cfg: cfg, secure: strings.HasPrefix(public, "https://"),
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: provider.Endpoint(),
			RedirectURL: public + "/callback", Scopes: []string{oidc.ScopeOpenID, "profile"}},
		idTokens: provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		// Access tokens are for the gateway's APIs, not for this client: their audience differs.
		access: provider.Verifier(&oidc.Config{SkipClientIDCheck: true}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("GET /callback", s.callback)
	mux.HandleFunc("GET /logout", s.logout)
	mux.Handle("GET /static/", http.FileServerFS(files))
	mux.Handle("GET /swagger-ui/", http.StripPrefix("/swagger-ui/", http.FileServer(http.Dir(cfg.SwaggerUIDir))))
	page := func(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc { return s.authed(h, false) }
	api := func(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc { return s.authed(h, true) }
	mux.HandleFunc("GET /{$}", page(s.index))
	mux.HandleFunc("GET /search", page(s.searchPage))
	mux.HandleFunc("GET /admin", page(s.admin))
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
	return securityHeaders(mux), nil
}

// securityHeaders: no framing, no sniffing, scripts and styles from the portal only (Swagger
// UI's inline initializer is a file of ours, not inline).
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
		h.ServeHTTP(w, r)
	})
}

// authed admits a valid session cookie (pages and API) or a bearer access token (API); pages
// without one go to the login, API calls get 401.
func (s *server) authed(h func(http.ResponseWriter, *http.Request, session), isAPI bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sess, ok := s.readSession(r); ok {
			h(w, r, sess)
			return
		}
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && isAPI {
			tok, err := s.access.Verify(r.Context(), bearer)
			if err == nil {
				sess, err := s.sessionOf(tok, time.Now().Add(time.Minute))
				if err == nil {
					h(w, r, sess)
					return
				}
			}
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
			http.Error(w, "API administrators only (role "+s.cfg.AdminRole+")", http.StatusForbidden)
			return
		}
		h(w, r, sess)
	}
}

// sessionOf reads the user and the realm roles of a token.
func (s *server) sessionOf(tok *oidc.IDToken, exp time.Time) (session, error) {
	var claims struct {
		User        string   `json:"preferred_username"`
		Roles       []string `json:"roles"`
		RealmAccess struct {
			Roles []string `json:"roles"`
		} `json:"realm_access"`
	}
	if err := tok.Claims(&claims); err != nil {
		return session{}, err
	}
	admin := slices.Contains(claims.Roles, s.cfg.AdminRole) || slices.Contains(claims.RealmAccess.Roles, s.cfg.AdminRole)
	return session{User: claims.User, Admin: admin, Exp: exp.Unix()}, nil
}

func (s *server) sign(payload []byte) string {
	m := hmac.New(sha256.New, s.cfg.SessionKey)
	m.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *server) verify(value string) ([]byte, bool) {
	p, sig, ok := strings.Cut(value, ".")
	if !ok {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, false
	}
	want := s.sign(payload)
	return payload, hmac.Equal([]byte(want), []byte(p+"."+sig))
}

func (s *server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

func (s *server) readSession(r *http.Request) (session, bool) {
	c, err := r.Cookie("kplane_portal")
	if err != nil {
		return session{}, false
	}
	payload, ok := s.verify(c.Value)
	var sess session
	if !ok || json.Unmarshal(payload, &sess) != nil || time.Now().Unix() > sess.Exp {
		return session{}, false
	}
	return sess, true
}

// login starts the authorization code flow with PKCE; state, verifier and the page to return
// to ride in a signed, short-lived cookie.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		next = "/"
	}
	state := randomString()
	verifier := oauth2.GenerateVerifier()
	raw, _ := json.Marshal(map[string]string{"s": state, "v": verifier, "n": next})
	s.setCookie(w, "kplane_login", s.sign(raw), 600)
	http.Redirect(w, r, s.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (s *server) callback(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie("kplane_login")
	if err != nil {
		http.Error(w, "login expired: start again", http.StatusBadRequest)
		return
	}
	raw, ok := s.verify(c.Value)
	var login map[string]string
	if !ok || json.Unmarshal(raw, &login) != nil || login["s"] != r.URL.Query().Get("state") {
		http.Error(w, "login state does not match: start again", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	if s.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, s.cfg.HTTPClient)
	}
	tok, err := s.oauth.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(login["v"]))
	if err != nil {
		http.Error(w, "login failed: the code was refused", http.StatusUnauthorized)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if _, err := s.idTokens.Verify(ctx, rawID); err != nil {
		http.Error(w, "login failed: invalid ID token", http.StatusUnauthorized)
		return
	}
	at, err := s.access.Verify(ctx, tok.AccessToken)
	if err != nil {
		http.Error(w, "login failed: invalid access token", http.StatusUnauthorized)
		return
	}
	sess, err := s.sessionOf(at, time.Now().Add(8*time.Hour))
	if err != nil {
		http.Error(w, "login failed: unreadable token", http.StatusUnauthorized)
		return
	}
	payload, _ := json.Marshal(sess)
	s.setCookie(w, "kplane_login", "", -1)
	s.setCookie(w, "kplane_portal", s.sign(payload), 8*3600)
	http.Redirect(w, r, login["n"], http.StatusFound)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	s.setCookie(w, "kplane_portal", "", -1)
	http.Redirect(w, r, "/", http.StatusFound)
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
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
	s.render(w, "search.html", sess, map[string]any{"Query": q, "Hits": s.cfg.Catalog.Search(q, sess.Admin, 200)})
}

func (s *server) admin(w http.ResponseWriter, r *http.Request, sess session) {
	if !sess.Admin {
		http.Error(w, "API administrators only (role "+s.cfg.AdminRole+")", http.StatusForbidden)
		return
	}
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
	rep, err := s.cfg.Catalog.Diff(e.Name, r.URL.Query().Get("from"), r.URL.Query().Get("to"))
	if err != nil {
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
		writeJSON(w, rep)
	}
}

func (s *server) apiSearch(w http.ResponseWriter, r *http.Request, sess session) {
	hits := s.cfg.Catalog.Search(r.URL.Query().Get("q"), sess.Admin, 200)
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
