package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kplane/kplane/tests/testbed"
)

// TestControlPlaneHardening checks that the test bed's security settings take effect, not just
// that the flags are passed: anonymous requests are refused (CIS 1.2.1, KISA Master-01), Secrets
// are encrypted in etcd (CIS 1.2.27, KISA Master-10), etcd refuses clients without a certificate
// of its own CA (CIS 2.2/2.7, KISA Master-11), and changes land in the audit log (CIS 1.2.17,
// KISA Master-07).
func TestControlPlaneHardening(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	ctx := context.Background()
	pki := func(name string) string { return filepath.Join(c.Dir, "pki", name) }

	// Anonymous: the API server answers 401 even for /readyz.
	caPEM, err := os.ReadFile(pki("ca.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, path := range []string{"/readyz", "/api/v1/namespaces", "/debug/pprof/"} {
		resp, err := anon.Get(c.Server + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "anonymous %s", path)
	}

	// A Secret written through the API is stored encrypted.
	dc, err := c.Dynamic()
	require.NoError(t, err)
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": "probe", "namespace": "default"},
		"stringData": map[string]any{"password": "plain-text-marker"},
	}}
	_, err = dc.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace("default").Create(ctx, secret, metav1.CreateOptions{})
	require.NoError(t, err)

	etcdTLS := func(cert string) *tls.Config {
		etcdCA, err := os.ReadFile(pki("etcd-ca.crt"))
		require.NoError(t, err)
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(etcdCA)
		cfg := &tls.Config{RootCAs: p}
		if cert != "" {
			kp, err := tls.LoadX509KeyPair(pki(cert+".crt"), pki(cert+".key"))
			require.NoError(t, err)
			cfg.Certificates = []tls.Certificate{kp}
		}
		return cfg
	}
	endpoint := fmt.Sprintf("127.0.0.1:%d", c.EtcdPort)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: etcdTLS("apiserver-etcd-client"), DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	get, err := cli.Get(ctx, "/registry/secrets/default/probe")
	require.NoError(t, err)
	require.Len(t, get.Kvs, 1)
	stored := string(get.Kvs[0].Value)
	assert.True(t, strings.HasPrefix(stored, "k8s:enc:aescbc:v1:key1:"), "secret must be encrypted at rest, got prefix %q", stored[:min(len(stored), 24)])
	assert.NotContains(t, stored, "plain-text-marker")

	// etcd without a client certificate, or with one from the cluster CA (not etcd's), is refused.
	for name, cert := range map[string]string{"no client certificate": "", "cluster-CA certificate": "admin"} {
		bad, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: etcdTLS(cert), DialTimeout: 2 * time.Second})
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err = bad.Get(cctx, "/registry/secrets/default/probe")
			cancel()
			bad.Close()
		}
		assert.Error(t, err, "etcd must refuse a client with %s", name)
	}

	// The create is in the audit log, with metadata only (never the secret's value).
	auditLog := filepath.Join(c.Dir, "audit", "audit.log")
	require.Eventually(t, func() bool { return auditLevel(auditLog, "secrets", "probe", "create") == "Metadata" }, 10*time.Second, 200*time.Millisecond)
	raw, err := os.ReadFile(auditLog)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "plain-text-marker", "the audit log must not record secret values")

	// RBAC changes are recorded with request and response (the hardened cluster's AuditPolicy).
	role := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
		"metadata": map[string]any{"name": "audit-probe", "namespace": "default"},
		"rules":    []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"get"}}}}}
	_, err = dc.Resource(gvrRole).Namespace("default").Create(ctx, role, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return auditLevel(auditLog, "roles", "audit-probe", "create") == "RequestResponse" }, 10*time.Second, 200*time.Millisecond)
}

// auditLevel is the level of the audit log's event for verb on resource/name ("" if none yet).
func auditLevel(path, resource, name, verb string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4<<20), 4<<20)
	for sc.Scan() {
		var ev struct {
			Verb      string `json:"verb"`
			Level     string `json:"level"`
			ObjectRef struct {
				Resource string `json:"resource"`
				Name     string `json:"name"`
			} `json:"objectRef"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Verb == verb && ev.ObjectRef.Resource == resource && ev.ObjectRef.Name == name {
			return ev.Level
		}
	}
	return ""
}
