package testbed

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// OpenBao is a real Vault-API server (OpenBao, from the tool cache) in dev mode: in-memory
// storage, unsealed, KV v2 at secret/, TLS on a loopback port with a CA of its own.
type OpenBao struct {
	URL       string
	CA        []byte // PEM
	RootToken string
}

// StartOpenBao starts `bao server -dev` for the test and stops it when the test ends.
func StartOpenBao(t testing.TB) *OpenBao {
	t.Helper()
	bin, err := exec.LookPath("bao")
	if err != nil {
		t.Fatalf("openbao: bao not on PATH: run `make tools` and `eval \"$(make -s env)\"`: %v", err)
	}
	port, err := freePort(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	b := &OpenBao{URL: fmt.Sprintf("https://127.0.0.1:%d", port), RootToken: "kplane-test-" + hex.EncodeToString(raw)}
	cmd := exec.Command(bin, "server", "-dev", "-dev-tls", "-dev-tls-cert-dir="+dir, "-dev-no-store-token",
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-dev-root-token-id="+b.RootToken)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	p, err := startProc("openbao", filepath.Join(dir, "bao.log"), cmd, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	client := &http.Client{Timeout: 2 * time.Second}
	err = p.waitReady(context.Background(), 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		if b.CA == nil {
			ca, err := os.ReadFile(filepath.Join(dir, "vault-ca.pem"))
			if err != nil {
				return false, nil
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return false, nil
			}
			b.CA = ca
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		}
		resp, err := client.Get(b.URL + "/v1/sys/health")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
