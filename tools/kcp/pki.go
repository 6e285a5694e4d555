package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// pki is the cluster's certificate set. Files live under <dir>/pki and are reused on restart,
// so a stopped cluster comes back with the same identity and its kubeconfig stays valid.
type pki struct{ dir string }

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

type certSpec struct {
	name   string // file stem
	ca     string // stem of the signing CA ("" = self-signed CA)
	cn     string
	orgs   []string
	ips    []net.IP
	dns    []string
	server bool
	client bool
}

// ensure creates every certificate the control plane needs unless it already exists and names
// the addresses it must (etcd's server certificate also names etcdIPs, the addresses where the
// real nodes reach it, which change with their slots). Two CAs are kept apart (CIS 2.7: etcd
// uses a CA of its own).
func (p pki) ensure(etcdIPs ...net.IP) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	loop := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")}
	specs := []certSpec{
		{name: "ca", cn: "kplane-ca"},
		{name: "etcd-ca", cn: "kplane-etcd-ca"},
		{name: "apiserver", ca: "ca", cn: "kube-apiserver", server: true, ips: loop,
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{name: "admin", ca: "ca", cn: "kplane-admin", orgs: []string{"system:masters"}, client: true},
		{name: "controller-manager", ca: "ca", cn: "system:kube-controller-manager", client: true},
		{name: "scheduler", ca: "ca", cn: "system:kube-scheduler", client: true},
		{name: "kwok", ca: "ca", cn: "kwok-controller", orgs: []string{"system:masters"}, client: true},
		{name: "apiserver-kubelet-client", ca: "ca", cn: "kube-apiserver-kubelet-client", client: true},
		{name: "etcd-server", ca: "etcd-ca", cn: "etcd", server: true, client: true, ips: append(loop[:1:1], etcdIPs...), dns: []string{"localhost"}},
		{name: "apiserver-etcd-client", ca: "etcd-ca", cn: "kube-apiserver-etcd-client", client: true},
	}
	for _, s := range specs {
		if p.current(s) {
			continue
		}
		if err := p.issue(s); err != nil {
			return fmt.Errorf("pki: %s: %w", s.name, err)
		}
	}
	if !exists(p.path("sa.key")) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		if err := writeKey(p.path("sa.key"), key); err != nil {
			return err
		}
		pub, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return err
		}
		return writePEM(p.path("sa.pub"), "PUBLIC KEY", pub, 0o600)
	}
	return nil
}

// current: s's certificate and key exist and the certificate names every address s does.
func (p pki) current(s certSpec) bool {
	if !exists(p.path(s.name + ".key")) {
		return false
	}
	cert, _, err := p.load(s.name)
	if err != nil {
		return false
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func (p pki) issue(s certSpec) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	now := time.Now().Add(-time.Minute)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: s.cn, Organization: s.orgs},
		NotBefore:    now,
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		IPAddresses:  s.ips,
		DNSNames:     s.dns,
	}
	if s.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if s.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	parent, signer := tmpl, crypto.Signer(key)
	if s.ca == "" {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
		tmpl.NotAfter = now.Add(10 * 365 * 24 * time.Hour)
	} else {
		if parent, signer, err = p.load(s.ca); err != nil {
			return err
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return err
	}
	if err := writeKey(p.path(s.name+".key"), key); err != nil {
		return err
	}
	return writePEM(p.path(s.name+".crt"), "CERTIFICATE", der, 0o600) // CIS 1.1.20: certificates 600 too
}

func (p pki) load(name string) (*x509.Certificate, crypto.Signer, error) {
	cb, err := os.ReadFile(p.path(name + ".crt"))
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(p.path(name + ".key"))
	if err != nil {
		return nil, nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, nil, fmt.Errorf("%s: not PEM", name)
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// writeFile writes atomically so a crash never leaves a half-written credential behind.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }
