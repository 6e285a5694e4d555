package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/tests/testbed"
)

// issue creates a certificate signed by parent (self-signed when parent is nil).
func issue(t *testing.T, cn string, orgs []string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// whoami asks the API server who a client certificate authenticates as (SelfSubjectReview,
// allowed to every authenticated user). It returns the HTTP status and the user name.
func whoami(t *testing.T, c *testbed.Cluster, cert *x509.Certificate, key *ecdsa.PrivateKey) (int, string, []string) {
	caPEM, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}},
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
	teamCA, teamKey, teamPEM := issue(t, "platform-team-ca", nil, true, nil, nil)
	alice, aliceKey, _ := issue(t, "alice", []string{"platform-admins"}, false, teamCA, teamKey)
	strangerCA, strangerCAKey, _ := issue(t, "stranger-ca", nil, true, nil, nil)
	mallory, malloryKey, _ := issue(t, "mallory", nil, false, strangerCA, strangerCAKey)

	status, _, _ := whoami(t, c, alice, aliceKey)
	assert.Equal(t, http.StatusUnauthorized, status, "before: the team CA is not trusted")

	program := func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		hc, err := hardenedcluster.NewHardenedCluster(ctx, "api", &hardenedcluster.Args{
			APIAccess: hardenedcluster.APIAccessArgs{AllowedCIDRs: []string{"127.0.0.0/8"}, ClientCAs: string(teamPEM)},
		}, pulumi.Providers(k8s))
		if err != nil {
			return err
		}
		ctx.Export("clientCaBundle", hc.ClientCABundle)
		ctx.Export("allowedCidrs", hc.AllowedCIDRs)
		return nil
	}
	s := openStack(t, "apiaccess", program, nil, t.TempDir())
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

	status, user, groups := whoami(t, c, alice, aliceKey)
	assert.Equal(t, http.StatusCreated, status, "the team CA's client certificate authenticates")
	assert.Equal(t, "alice", user)
	assert.Contains(t, groups, "platform-admins")
	status, _, _ = whoami(t, c, mallory, malloryKey)
	assert.Equal(t, http.StatusUnauthorized, status, "an unknown CA is refused")
	dc, err := c.Dynamic()
	require.NoError(t, err)
	get(t, dc, gvrNamespace, "", "default") // the admin identity (cluster CA) still works

	_, err = s.Destroy(context.Background())
	require.NoError(t, err)
}
