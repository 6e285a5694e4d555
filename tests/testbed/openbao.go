package testbed

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// OpenBao is a real Vault-API server (OpenBao, from the tool cache) in dev mode: in-memory
// storage, unsealed, KV v2 at secret/, TLS on a loopback port with a CA of its own (or at
// OpenBaoOptions.IP, where a real node's pods reach it).
type OpenBao struct {
	URL       string
	CA        []byte // PEM
	RootToken string
}

// OpenBaoOptions: IP adds a TLS listener on that address (a real-node cluster's HostAddress),
// with a certificate naming it; URL and CA are then that listener's.
type OpenBaoOptions struct{ IP string }

// StartOpenBao starts `bao server -dev` for the test and stops it when the test ends.
func StartOpenBao(t testing.TB) *OpenBao { t.Helper(); return StartOpenBaoWith(t, OpenBaoOptions{}) }

// StartOpenBaoWith is StartOpenBao with options.
func StartOpenBaoWith(t testing.TB, o OpenBaoOptions) *OpenBao {
	t.Helper()
	bin, err := exec.LookPath("bao")
	if err != nil {
		t.Fatalf("openbao: bao not on PATH: run `make tools` and `eval \"$(make -s env)\"`: %v", err)
	}
	port, err := freePort(4) // the dev listener and its cluster port; the IP's and its cluster port
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	b := &OpenBao{URL: fmt.Sprintf("https://127.0.0.1:%d", port), RootToken: "kplane-test-" + hex.EncodeToString(raw)}
	args := []string{"server", "-dev", "-dev-tls", "-dev-tls-cert-dir=" + dir, "-dev-no-store-token",
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-dev-root-token-id=" + b.RootToken}
	if o.IP != "" {
		config, ca, err := openBaoListener(dir, o.IP, port+2)
		if err != nil {
			t.Fatal(err)
		}
		args, b.URL, b.CA = append(args, "-config="+config), fmt.Sprintf("https://%s:%d", o.IP, port+2), ca
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	p, err := startProc("openbao", filepath.Join(dir, "bao.log"), cmd, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	client := &http.Client{Timeout: 2 * time.Second}
	err = p.waitReady(context.Background(), 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		if client.Transport == nil {
			ca := b.CA
			if ca == nil { // the dev listener's, written once it starts
				read, err := os.ReadFile(filepath.Join(dir, "vault-ca.pem"))
				if err != nil {
					return false, nil
				}
				ca = read
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return false, nil
			}
			b.CA = ca
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		}
		return httpOK(client, b.URL+"/v1/sys/health")()
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openBaoListener writes a configuration adding a TLS listener on ip:port, with a certificate
// naming ip from a CA of its own; it returns the file and the CA.
func openBaoListener(dir, ip string, port int) (string, []byte, error) {
	ca, cert, key, err := servingCert(net.ParseIP(ip))
	if err != nil {
		return "", nil, err
	}
	for name, pem := range map[string][]byte{"listener.crt": cert, "listener.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), pem, 0o600); err != nil {
			return "", nil, err
		}
	}
	config := filepath.Join(dir, "listener.hcl")
	body := fmt.Sprintf("listener \"tcp\" {\n  address = %q\n  tls_cert_file = %q\n  tls_key_file = %q\n}\n",
		fmt.Sprintf("%s:%d", ip, port), filepath.Join(dir, "listener.crt"), filepath.Join(dir, "listener.key"))
	return config, ca, os.WriteFile(config, []byte(body), 0o600)
}
