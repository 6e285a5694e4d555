// Package trust is how kplane's own tools trust a server whose certificate a private CA signed:
// the system's CAs plus those of a PEM file.
package trust

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Config is a TLS client configuration trusting the system's CAs and caFile's (TLS 1.2 or newer).
func Config(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
