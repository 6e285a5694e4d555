package testbed

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kplane/kplane/components/identity"
)

// Keycloak is a real Keycloak server (the Maven Central distribution in the tool cache, kc.sh on
// PATH) on a loopback HTTPS port with an in-memory database and a generated admin.
type Keycloak struct {
	URL           string // https://127.0.0.1:<port>
	CA            []byte // PEM of the CA that signed its serving certificate
	AdminUser     string
	AdminPassword string
	Log           string // JSON lines (identity.KeycloakServerOptions)
	*proc
}

// ServiceOptions place a test-bed service: a fixed loopback port (0: free ones) and whether it
// outlives the caller (the dev environment's identity; tests never leak processes).
type ServiceOptions struct {
	Port     int
	Detached bool
	// IP Keycloak listens on, in its URL and certificate (default 127.0.0.1; a real-node
	// cluster's HostAddress for pods).
	IP string
}

func (o ServiceOptions) ports(n int) (int, error) {
	if o.Port != 0 {
		return o.Port, nil
	}
	return freePort(n)
}

// StartKeycloak starts Keycloak in dir and waits until it answers (typically 15-40 s on 2 cores).
func StartKeycloak(ctx context.Context, dir string) (*Keycloak, error) {
	return StartKeycloakWith(ctx, dir, ServiceOptions{})
}

// StartKeycloakWith starts Keycloak with the given placement. Its serving certificate and CA
// are kept in dir and reused, so a restarted Keycloak is trusted by what trusted it before.
func StartKeycloakWith(ctx context.Context, dir string, o ServiceOptions) (*Keycloak, error) {
	kc, err := exec.LookPath("kc.sh")
	if err != nil {
		return nil, fmt.Errorf("kc.sh not on PATH: run `make tools` (Keycloak from Maven Central) and eval \"$(make -s env)\": %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ip := cmp.Or(o.IP, "127.0.0.1")
	certFile, keyFile, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.pem")
	ca, err := os.ReadFile(caFile)
	if err != nil || !fileExists(certFile) || !fileExists(keyFile) {
		var certPEM, keyPEM []byte
		if ca, certPEM, keyPEM, err = servingCert(net.ParseIP(ip)); err != nil {
			return nil, err
		}
		for f, b := range map[string][]byte{caFile: ca, certFile: certPEM, keyFile: keyPEM} {
			if err := os.WriteFile(f, b, 0o600); err != nil {
				return nil, err
			}
		}
	}
	port, err := o.ports(3) // https, management, and http (bound even when disabled in dev mode)
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	k := &Keycloak{URL: fmt.Sprintf("https://%s:%d", ip, port), CA: ca, AdminUser: "kplane-admin", AdminPassword: hex.EncodeToString(secret),
		Log: filepath.Join(dir, "keycloak.log")}
	args := append([]string{"start-dev", "--http-enabled=false", "--https-port", fmt.Sprint(port), "--http-host=" + ip,
		"--https-certificate-file", certFile, "--https-certificate-key-file", keyFile,
		"--http-management-port", fmt.Sprint(port + 1), "--http-port", fmt.Sprint(port + 2), "--db=dev-mem", "--hostname-strict=false",
		"--truststore-paths", caFile}, // Keycloak trusts itself (a brokered realm on the same server) and the test bed's CA
		identity.KeycloakServerOptions()...) // JSON lines with login and admin events, as the audit pipeline ships them
	cmd := exec.Command(kc, args...)
	cmd.Env = append(os.Environ(), "KC_BOOTSTRAP_ADMIN_USERNAME="+k.AdminUser, "KC_BOOTSTRAP_ADMIN_PASSWORD="+k.AdminPassword,
		"JAVA_OPTS_APPEND=-Djava.io.tmpdir="+dir)
	if k.proc, err = startProc("keycloak", k.Log, cmd, o.Detached); err != nil {
		return nil, err
	}
	client, err := k.HTTPClient()
	if err != nil {
		k.Stop()
		return nil, err
	}
	if err := k.waitReady(ctx, 180*time.Second, 500*time.Millisecond, httpOK(client, k.URL+"/realms/master/.well-known/openid-configuration")); err != nil {
		return nil, err
	}
	return k, nil
}

// HTTPClient trusts the Keycloak's CA.
func (k *Keycloak) HTTPClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(k.CA) {
		return nil, fmt.Errorf("keycloak CA: no certificate")
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// Stop kills Keycloak's process group.
func (k *Keycloak) Stop() { k.stop() }

// servingCert makes a CA and a server certificate signed by it for loopback and ips (PEM; key
// as PKCS#8).
func servingCert(ips ...net.IP) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kplane test bed identity CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, key.Public(), caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}

// LDAP is a real OpenLDAP server (Debian's slapd) on a loopback port, with one suffix.
type LDAP struct {
	URL          string // ldap://127.0.0.1:<port>
	BaseDN       string
	BindDN       string
	BindPassword string
	*proc
}

// StartLDAP starts slapd in dir with suffix baseDN (schemas core, cosine, inetorgperson, nis) and
// loads ldif (the entries below the suffix; the suffix entry itself is created here).
func StartLDAP(ctx context.Context, dir, baseDN, ldif string) (*LDAP, error) {
	return StartLDAPWith(ctx, dir, baseDN, ldif, ServiceOptions{})
}

// StartLDAPWith starts slapd with the given placement on a fresh database.
func StartLDAPWith(ctx context.Context, dir, baseDN, ldif string, o ServiceOptions) (*LDAP, error) {
	slapd, err := exec.LookPath("slapd")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/slapd"); statErr != nil {
			return nil, fmt.Errorf("slapd not installed: run `make tools` (Debian's slapd and ldap-utils)")
		}
		slapd = "/usr/sbin/slapd"
	}
	_ = os.RemoveAll(filepath.Join(dir, "data"))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	port, err := o.ports(1)
	if err != nil {
		return nil, err
	}
	l := &LDAP{URL: fmt.Sprintf("ldap://127.0.0.1:%d", port), BaseDN: baseDN, BindDN: "cn=admin," + baseDN, BindPassword: hex.EncodeToString(secret)}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
database mdb
maxsize 104857600
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/data
`, dir, baseDN, l.BindDN, l.BindPassword)
	confFile := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if l.proc, err = startProc("slapd", filepath.Join(dir, "slapd.log"), exec.Command(slapd, "-f", confFile, "-h", l.URL+"/", "-d", "0"), o.Detached); err != nil {
		return nil, err
	}
	dc, _, _ := strings.Cut(strings.TrimPrefix(baseDN, "dc="), ",")
	base := fmt.Sprintf("dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: %s\ndc: %s\n\n", baseDN, dc, dc)
	// Ready once the entries load; an error other than "not listening yet" is final.
	if err := l.waitReady(ctx, 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		add := exec.CommandContext(ctx, "ldapadd", "-x", "-H", l.URL, "-D", l.BindDN, "-w", l.BindPassword)
		add.Stdin = strings.NewReader(base + ldif)
		out, err := add.CombinedOutput()
		if err != nil && !strings.Contains(string(out), "Can't contact LDAP server") {
			return false, fmt.Errorf("loading entries: %v: %s", err, out)
		}
		return err == nil, nil
	}); err != nil {
		return nil, err
	}
	return l, nil
}

// Stop kills slapd.
func (l *LDAP) Stop() { l.stop() }

// PID of the Keycloak process (a Detached one is stopped by it).
func (k *Keycloak) PID() int { return k.pid() }

// PID of the slapd process.
func (l *LDAP) PID() int { return l.pid() }

// StopPID ends a detached service's process group (started with Setsid: its pid leads it).
func StopPID(pid int) {
	if pid > 0 && alive(pid) {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		for i := 0; i < 50 && alive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// Alive says whether a process runs (and is not a zombie).
func Alive(pid int) bool { return pid > 0 && alive(pid) }

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// FreePorts finds n consecutive free loopback ports and returns the first.
func FreePorts(n int) (int, error) { return freePort(n) }
