package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/tests/testbed"
	"github.com/kplane/kplane/tests/testbed/pki"
)

// whoami asks the API server who a client certificate authenticates as (SelfSubjectReview,
// allowed to every authenticated user). It returns the HTTP status and the user name.
func whoami(t *testing.T, c *testbed.Cluster, id *pki.Cert) (int, string, []string) {
	caPEM, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{id.Cert.Raw}, PrivateKey: id.Key}},
	}}}
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	resp, err := client.Post(c.Server+"/apis/authentication.k8s.io/v1/selfsubjectreviews", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&review)
	return resp.StatusCode, review.Status.UserInfo.Username, review.Status.UserInfo.Groups
}

// TestAPIClientCA: the CA bundle the component outputs (APIAccess.ClientCAs) becomes the API
// server's --client-ca-file: a team CA's client certificate then authenticates over mTLS, a
// certificate of an unknown CA is refused, and the cluster's own identities keep working.
func TestAPIClientCA(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	teamCA := pki.Certificate(t, "platform-team-ca", nil, true, nil)
	alice := pki.Certificate(t, "alice", []string{"platform-admins"}, false, teamCA)
	mallory := pki.Certificate(t, "mallory", nil, false, pki.Certificate(t, "stranger-ca", nil, true, nil))

	status, _, _ := whoami(t, c, alice)
	assert.Equal(t, http.StatusUnauthorized, status, "before: the team CA is not trusted")

	s := hardenedStack(t, c, "apiaccess", &hardenedcluster.Args{
		APIAccess: hardenedcluster.APIAccessArgs{AllowedCIDRs: []string{"127.0.0.0/8"}, ClientCAs: string(teamCA.PEM)},
	}, nil)
	up, err := s.Up(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []any{"127.0.0.0/8"}, up.Outputs["allowedCidrs"].Value)

	// The platform (here: the test bed) applies the bundle next to its own CA.
	own, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.crt"))
	require.NoError(t, err)
	bundle := filepath.Join(t.TempDir(), "client-ca.pem")
	require.NoError(t, os.WriteFile(bundle, append(own, up.Outputs["clientCaBundle"].Value.(string)...), 0o600))
	require.NoError(t, c.Stop())
	c.SetAPIServerArgs("--client-ca-file=" + bundle)
	require.NoError(t, c.Start(context.Background()))

	status, user, groups := whoami(t, c, alice)
	assert.Equal(t, http.StatusCreated, status, "the team CA's client certificate authenticates")
	assert.Equal(t, "alice", user)
	assert.Contains(t, groups, "platform-admins")
	status, _, _ = whoami(t, c, mallory)
	assert.Equal(t, http.StatusUnauthorized, status, "an unknown CA is refused")
	dc, err := c.Dynamic()
	require.NoError(t, err)
	get(t, dc, gvrNamespace, "", "default") // the admin identity (cluster CA) still works

	_, err = s.Destroy(context.Background())
	require.NoError(t, err)
}
