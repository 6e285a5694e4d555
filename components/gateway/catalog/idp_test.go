package catalog

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"
)

// testIdP is a small OpenID provider for the portal's attack tests: it signs whatever claims a
// test asks for (with its own key or, forged, with another), runs the authorization code flow
// with PKCE for one user without a login form, refreshes tokens while the user's session lives
// and ends sessions at its end-session endpoint. Real Keycloak is used by the integration test;
// this one forges what Keycloak would never sign.
type testIdP struct {
	*httptest.Server
	key, other *rsa.PrivateKey
	client     string

	mu       sync.Mutex
	roles    []string          // the user's roles in the catalog client
	codes    map[string]string // code -> PKCE challenge
	sessions map[string]bool   // refresh token -> alive
}

func newTestIdP(t *testing.T, client string) *testIdP {
	t.Helper()
	idp := &testIdP{client: client, codes: map[string]string{}, sessions: map[string]bool{}}
	var err error
	idp.key, err = rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	idp.other, err = rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := idp.URL
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": u, "authorization_endpoint": u + "/auth", "token_endpoint": u + "/token",
			"jwks_uri": u + "/jwks", "end_session_endpoint": u + "/logout", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &idp.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /auth", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		code := randomString()
		idp.mu.Lock()
		idp.codes[code] = q.Get("code_challenge")
		idp.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", idp.token)
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		idp.mu.Lock()
		delete(idp.sessions, r.FormValue("refresh_token"))
		idp.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	idp.Server = httptest.NewServer(mux)
	t.Cleanup(idp.Close)
	return idp
}

func (idp *testIdP) token(w http.ResponseWriter, r *http.Request) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	refusal := func() { w.WriteHeader(http.StatusBadRequest); _, _ = w.Write([]byte(`{"error":"invalid_grant"}`)) }
	switch r.FormValue("grant_type") {
	case "authorization_code":
		challenge, ok := idp.codes[r.FormValue("code")]
		sum := sha256.Sum256([]byte(r.FormValue("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			refusal()
			return
		}
		delete(idp.codes, r.FormValue("code"))
	case "refresh_token":
		if !idp.sessions[r.FormValue("refresh_token")] {
			refusal()
			return
		}
		delete(idp.sessions, r.FormValue("refresh_token"))
	default:
		refusal()
		return
	}
	refresh := randomString()
	idp.sessions[refresh] = true
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 300, "refresh_token": refresh,
		"access_token": idp.sign(idp.key, idp.accessClaims(idp.client, nil, idp.roles)),
		"id_token":     idp.sign(idp.key, map[string]any{"typ": "ID", "aud": idp.client, "azp": idp.client, "preferred_username": "alice"})})
}

// accessClaims are a Keycloak-shaped access token of alice issued to azp, for aud, with roles
// in the catalog client.
func (idp *testIdP) accessClaims(azp string, aud []string, roles []string) map[string]any {
	c := map[string]any{"typ": "Bearer", "azp": azp, "preferred_username": "alice",
		"resource_access": map[string]any{idp.client: map[string]any{"roles": roles}}}
	if len(aud) > 0 {
		c["aud"] = aud
	}
	return c
}

// sign adds the issuer, subject and times to claims and signs them with key.
func (idp *testIdP) sign(key *rsa.PrivateKey, claims map[string]any) string {
	now := time.Now()
	c := map[string]any{"iss": idp.URL, "sub": "user-1", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		panic(err)
	}
	raw, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		panic(err)
	}
	return raw
}

func (idp *testIdP) setRoles(roles ...string) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.roles = roles
}

// endSessions ends every session, as an administrator disabling the user does.
func (idp *testIdP) endSessions() {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	clear(idp.sessions)
}
