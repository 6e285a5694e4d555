package testbed

import (
	"context"
	cryptotls "crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SeaweedFS is a real S3-compatible server (SeaweedFS `weed mini`, built from its Go module) on
// loopback ports, data in dir, with the buckets created. Unlike S3 it checks every request's
// signature (SigV4): only accessKey with secretKey is accepted, anonymous requests are denied.
// It is stopped when the test ends.
type SeaweedFS struct {
	URL string
	// CA signed the S3 certificate (with TLS).
	CA  []byte
	Log string
}

// StartSeaweedFS starts the server with flags (the NFS store's: backup.NFSStoreFlags), its data
// in dir (in the store, the NFS export), S3 over HTTPS when tls, and waits until S3 answers.
func StartSeaweedFS(t testing.TB, dir, accessKey, secretKey string, tls bool, flags []string) *SeaweedFS {
	t.Helper()
	bin, err := Binary("weed")
	if err != nil {
		t.Fatal(err)
	}
	// Every listener on its own loopback port: master, volume, filer, S3, admin and their gRPC.
	base, err := freePort(10)
	if err != nil {
		t.Fatal(err)
	}
	ports := []string{"master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
		"s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc"}
	flags = append([]string{}, flags...)
	for i, p := range ports {
		flags = append(flags, fmt.Sprintf("-%s=%d", p, base+i))
	}
	flags = append(flags, "-dir="+dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.port.legacy=0", "-debug.port=0", "-metricsPort=0")
	s := &SeaweedFS{URL: fmt.Sprintf("http://127.0.0.1:%d", base+6), Log: filepath.Join(dir, "weed.log")}
	client := http.DefaultClient
	if tls {
		ca, cert, key, err := servingCert()
		if err != nil {
			t.Fatal(err)
		}
		for f, pem := range map[string][]byte{"s3.crt": cert, "s3.key": key} {
			if err := os.WriteFile(filepath.Join(dir, f), pem, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		flags = append(flags, "-s3.cert.file="+filepath.Join(dir, "s3.crt"), "-s3.key.file="+filepath.Join(dir, "s3.key"))
		s.URL, s.CA = "https"+strings.TrimPrefix(s.URL, "http"), ca
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &cryptotls.Config{RootCAs: pool}}}
	}
	cmd := exec.Command(bin, flags...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey)
	p, err := startProc("weed mini", s.Log, cmd, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	// Ready once S3 answers and the startup banner (buckets created) is out.
	s3 := httpOK(client, s.URL+"/healthz")
	if err := p.waitReady(context.Background(), 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		ok, err := s3()
		return ok && logHas(s.Log, "All enabled components are running"), err
	}); err != nil {
		t.Fatal(err)
	}
	return s
}
