package realmsync

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExpiredTokenLogsInAgain: a call whose token Keycloak no longer accepts logs in once more
// and is repeated; a login that is refused then is the error, and a second 401 is not retried
// in a loop.
func TestExpiredTokenLogsInAgain(t *testing.T) {
	var logins, calls atomic.Int32
	var refuse atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/realms/master/protocol/openid-connect/token":
			if refuse.Load() {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			n := logins.Add(1)
			_, _ = w.Write([]byte(`{"access_token":"token-` + string(rune('0'+n)) + `"}`))
		default:
			calls.Add(1)
			if r.Header.Get("Authorization") != "Bearer token-2" { // the first token has expired
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"HTTP 401 Unauthorized"}`))
				return
			}
			_, _ = w.Write([]byte(`{"realm":"kplane"}`))
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client(), AdminUser: "admin", AdminPassword: "secret"}
	var realm map[string]any
	require.NoError(t, c.Do(context.Background(), "GET", "/admin/realms/kplane", nil, &realm))
	assert.Equal(t, "kplane", realm["realm"])
	assert.Equal(t, int32(2), logins.Load(), "logged in again once")
	assert.Equal(t, int32(2), calls.Load(), "the call was repeated once")

	// The new token (token-3) is refused too: one retry, then Keycloak's answer.
	c.token = "token-1"
	err := c.Do(context.Background(), "GET", "/admin/realms/kplane", nil, &realm)
	assert.ErrorContains(t, err, "GET /admin/realms/kplane: HTTP 401")
	assert.Equal(t, int32(4), calls.Load(), "one retry, not a loop")

	refuse.Store(true)
	err = c.Do(context.Background(), "GET", "/admin/realms/kplane", nil, &realm)
	assert.ErrorContains(t, err, "admin login as admin refused (HTTP 401)")
	assert.NotContains(t, err.Error(), "secret")
}
