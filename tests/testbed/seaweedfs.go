package testbed

import (
	"cmp"
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
	CA   []byte
	Log  string
	proc *proc
}

// StartSeaweedFS starts the server with flags (the NFS store's: backup.NFSStoreFlags), its data
// in dir (in the store, the NFS export), S3 over HTTPS when tls, waits until S3 answers, and
// stops it when the test ends.
func StartSeaweedFS(t testing.TB, dir, accessKey, secretKey string, tls bool, flags []string) *SeaweedFS {
	t.Helper()
	return StartSeaweedFSWith(t, SeaweedFSOptions{Dir: dir, AccessKey: accessKey, SecretKey: secretKey, TLS: tls, Flags: flags})
}

// StartSeaweedFSWith starts the server with o, waits until S3 answers, and stops it when the
// test ends.
func StartSeaweedFSWith(t testing.TB, o SeaweedFSOptions) *SeaweedFS {
	t.Helper()
	s, err := LaunchSeaweedFS(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// SeaweedFSOptions: where the server keeps its data, the one key pair it accepts, and how it runs.
type SeaweedFSOptions struct {
	Dir, AccessKey, SecretKey string
	TLS                       bool
	Flags                     []string
	// S3Port fixes the S3 port (0: any free one; the other listeners always take free ones).
	S3Port int
	// Detached servers outlive the process that started them (`make up`'s local store).
	Detached bool
	// IP the server listens on and advertises (default 127.0.0.1; a real-node cluster's
	// HostAddress for pods).
	IP string
}

// LaunchSeaweedFS starts the server and waits until S3 answers.
func LaunchSeaweedFS(o SeaweedFSOptions) (*SeaweedFS, error) {
	bin, err := Binary("weed")
	if err != nil {
		return nil, err
	}
	// Every listener on its own loopback port: master, volume, filer, S3, admin and their gRPC.
	base, err := freePort(10)
	if err != nil {
		return nil, err
	}
	ports := []string{"master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
		"s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc"}
	s3Port := base + 6
	if o.S3Port != 0 {
		s3Port = o.S3Port
	}
	flags := append([]string{}, o.Flags...)
	for i, p := range ports {
		port := base + i
		if p == "s3.port" {
			port = s3Port
		}
		flags = append(flags, fmt.Sprintf("-%s=%d", p, port))
	}
	ip := cmp.Or(o.IP, "127.0.0.1")
	flags = append(flags, "-dir="+o.Dir, "-ip="+ip, "-ip.bind="+ip, "-admin.port.legacy=0", "-debug.port=0", "-metricsPort=0")
	s := &SeaweedFS{URL: fmt.Sprintf("http://%s:%d", ip, s3Port), Log: filepath.Join(o.Dir, "weed.log")}
	client := http.DefaultClient
	if o.TLS {
		ca, cert, key, err := servingCert()
		if err != nil {
			return nil, err
		}
		for f, pem := range map[string][]byte{"s3.crt": cert, "s3.key": key} {
			if err := os.WriteFile(filepath.Join(o.Dir, f), pem, 0o600); err != nil {
				return nil, err
			}
		}
		flags = append(flags, "-s3.cert.file="+filepath.Join(o.Dir, "s3.crt"), "-s3.key.file="+filepath.Join(o.Dir, "s3.key"))
		s.URL, s.CA = "https"+strings.TrimPrefix(s.URL, "http"), ca
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &cryptotls.Config{RootCAs: pool}}}
	}
	cmd := exec.Command(bin, flags...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+o.AccessKey, "AWS_SECRET_ACCESS_KEY="+o.SecretKey)
	p, err := startProc("weed mini", s.Log, cmd, o.Detached)
	if err != nil {
		return nil, err
	}
	s.proc = p
	// Ready once S3 answers and the startup banner (buckets created) is out.
	s3 := httpOK(client, s.URL+"/healthz")
	if err := p.waitReady(context.Background(), 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		ok, err := s3()
		return ok && logHas(s.Log, "All enabled components are running"), err
	}); err != nil {
		p.stop()
		return nil, err
	}
	return s, nil
}

// Stop stops the server; PID is its process (a detached server's, for a later stop).
func (s *SeaweedFS) Stop()    { s.proc.stop() }
func (s *SeaweedFS) PID() int { return s.proc.pid() }
