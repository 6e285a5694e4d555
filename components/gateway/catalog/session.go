package catalog

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// session is who is logged in. It rides in a cookie sealed with AES-GCM (the session key), so
// the refresh token inside is neither readable nor changeable by the browser.
type session struct {
	ID    string `json:"i"`
	User  string `json:"u"`
	Admin bool   `json:"a"`
	// Exp ends the session whatever happens (SessionLifetime after login).
	Exp int64 `json:"e"`
	// Checked is when the realm last confirmed the session (login or refresh): after
	// RecheckEvery the refresh token is used, which fails once the user logged out, was disabled
	// or lost the session in Keycloak, and brings the roles the realm gives now.
	Checked int64  `json:"c"`
	Refresh string `json:"r,omitempty"`
}

const sessionCookie, loginCookie = "kplane_portal", "kplane_login"

// sealer encrypts and authenticates cookies (AES-256-GCM, key derived from the session key).
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (sealer, error) {
	k := sha256.Sum256(append([]byte("kplane-catalog cookie\x00"), key...))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return sealer{}, err
	}
	aead, err := cipher.NewGCM(block)
	return sealer{aead}, err
}

func (s sealer) seal(name string, v any) string {
	plain, _ := json.Marshal(v)
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	// The cookie's name is authenticated too: a login cookie cannot pass for a session.
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name)))
}

func (s sealer) open(name, value string, into any) bool {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return false
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(name))
	return err == nil && json.Unmarshal(plain, into) == nil
}

// revoked are the sessions logged out here, kept until they would have expired anyway. A copied
// cookie of a logged-out session is refused at once by this replica; other replicas refuse it at
// their next check with the realm, where logout ended the session (at most RecheckEvery).
type revoked struct {
	mu  sync.Mutex
	ids map[string]int64 // session id -> expiry (unix)
}

func (r *revoked) add(id string, exp int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now().Unix()
	for k, e := range r.ids {
		if e < now {
			delete(r.ids, k)
		}
	}
	if r.ids == nil {
		r.ids = map[string]int64{}
	}
	r.ids[id] = exp
}

func (r *revoked) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ids[id]
	return ok
}

// currentSession is the request's session, confirmed by the realm when the last check is older
// than RecheckEvery (then the cookie is renewed); false when there is none or it ended.
func (s *server) currentSession(w http.ResponseWriter, r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	var sess session
	now := time.Now()
	if !s.cookies.open(sessionCookie, c.Value, &sess) || now.Unix() > sess.Exp || s.revoked.has(sess.ID) {
		return session{}, false
	}
	if now.Sub(time.Unix(sess.Checked, 0)) < s.cfg.RecheckEvery {
		return sess, true
	}
	tok, err := s.oauth.TokenSource(s.clientContext(r.Context()), &oauth2.Token{RefreshToken: sess.Refresh, Expiry: now.Add(-time.Second)}).Token()
	if err != nil {
		s.event(r, "session.ended", sess.User, "the realm refused the session's refresh")
		s.setCookie(w, sessionCookie, "", -1)
		return session{}, false
	}
	fresh, err := s.accessSession(r.Context(), tok.AccessToken)
	if err != nil || fresh.User != sess.User {
		s.event(r, "session.ended", sess.User, "refreshed token refused")
		s.setCookie(w, sessionCookie, "", -1)
		return session{}, false
	}
	sess.Admin, sess.Checked = fresh.Admin, now.Unix()
	if tok.RefreshToken != "" {
		sess.Refresh = tok.RefreshToken
	}
	s.writeSession(w, sess)
	return sess, true
}

func (s *server) writeSession(w http.ResponseWriter, sess session) {
	s.setCookie(w, sessionCookie, s.cookies.seal(sessionCookie, sess), int(time.Until(time.Unix(sess.Exp, 0)).Seconds()))
}

// accessSession verifies a bearer access token for the catalog and reads who it is for: an
// access token (typ Bearer, never an ID token) of this realm, issued to the catalog's client
// (azp) or for it (aud). Roles are the catalog client's roles (resource_access), so another
// tool's "admin" grants nothing here.
func (s *server) accessSession(ctx context.Context, raw string) (session, error) {
	tok, err := s.access.Verify(s.clientContext(ctx), raw)
	if err != nil {
		return session{}, err
	}
	var claims struct {
		Type            string   `json:"typ"`
		AuthorizedParty string   `json:"azp"`
		User            string   `json:"preferred_username"`
		Roles           []string `json:"roles"`
		ResourceAccess  map[string]struct {
			Roles []string `json:"roles"`
		} `json:"resource_access"`
	}
	if err := tok.Claims(&claims); err != nil {
		return session{}, err
	}
	if !strings.EqualFold(claims.Type, "Bearer") {
		return session{}, errors.New("not an access token")
	}
	ours := claims.AuthorizedParty == s.cfg.ClientID
	if !ours && !slices.Contains(tok.Audience, s.cfg.ClientID) {
		return session{}, errors.New("token not issued for the catalog")
	}
	admin := slices.Contains(claims.ResourceAccess[s.cfg.ClientID].Roles, s.cfg.AdminRole) ||
		// The catalog client's own role mapper (the identity realm's tool clients) writes its roles
		// here; only a token issued to the catalog carries the catalog's mapper.
		(ours && slices.Contains(claims.Roles, s.cfg.AdminRole))
	if claims.User == "" {
		claims.User = tok.Subject
	}
	return session{User: claims.User, Admin: admin}, nil
}

func (s *server) clientContext(ctx context.Context) context.Context {
	if s.cfg.HTTPClient != nil {
		return oidc.ClientContext(ctx, s.cfg.HTTPClient)
	}
	return ctx
}

func (s *server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

// SafeNext is the page to return to after login: a path of this portal, "/" for anything else
// (another host, a scheme, "//", a backslash, which browsers read as "/", or a control character).
func SafeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') ||
		strings.IndexFunc(next, unicode.IsControl) >= 0 || len(next) > 2048 {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}

// login starts the authorization code flow with PKCE; state, verifier and the page to return
// to ride in a sealed, short-lived cookie.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	state := randomString()
	verifier := oauth2.GenerateVerifier()
	s.setCookie(w, loginCookie, s.cookies.seal(loginCookie, map[string]string{"s": state, "v": verifier, "n": SafeNext(r.URL.Query().Get("next"))}), 600)
	http.Redirect(w, r, s.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (s *server) callback(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	if err != nil {
		http.Error(w, "login expired: start again", http.StatusBadRequest)
		return
	}
	var login map[string]string
	if !s.cookies.open(loginCookie, c.Value, &login) || login["s"] == "" || login["s"] != r.URL.Query().Get("state") {
		s.event(r, "login.refused", "", "state does not match")
		http.Error(w, "login state does not match: start again", http.StatusBadRequest)
		return
	}
	ctx := s.clientContext(r.Context())
	tok, err := s.oauth.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(login["v"]))
	if err != nil {
		s.event(r, "login.refused", "", "code refused")
		http.Error(w, "login failed: the code was refused", http.StatusUnauthorized)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if _, err := s.idTokens.Verify(ctx, rawID); err != nil {
		s.event(r, "login.refused", "", "invalid ID token")
		http.Error(w, "login failed: invalid ID token", http.StatusUnauthorized)
		return
	}
	sess, err := s.accessSession(ctx, tok.AccessToken)
	if err != nil {
		s.event(r, "login.refused", "", "invalid access token")
		http.Error(w, "login failed: invalid access token", http.StatusUnauthorized)
		return
	}
	now := time.Now()
	sess.ID, sess.Exp, sess.Checked, sess.Refresh = randomString(), now.Add(s.cfg.SessionLifetime).Unix(), now.Unix(), tok.RefreshToken
	s.setCookie(w, loginCookie, "", -1)
	s.writeSession(w, sess)
	s.event(r, "login", sess.User, map[bool]string{true: "administrator", false: "developer"}[sess.Admin])
	http.Redirect(w, r, login["n"], http.StatusFound)
}

// logout ends the session here (this replica refuses the cookie from now on) and in the realm
// (so the refresh fails everywhere), then clears the cookie.
func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(sessionCookie)
	var sess session
	if err == nil && s.cookies.open(sessionCookie, c.Value, &sess) {
		s.revoked.add(sess.ID, sess.Exp)
		if sess.Refresh != "" && s.endSession != "" {
			form := url.Values{"client_id": {s.cfg.ClientID}, "refresh_token": {sess.Refresh}}
			if s.cfg.ClientSecret != "" {
				form.Set("client_secret", s.cfg.ClientSecret)
			}
			client := s.cfg.HTTPClient
			if client == nil {
				client = http.DefaultClient
			}
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.endSession, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		s.event(r, "logout", sess.User, "")
	}
	s.setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusFound)
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
