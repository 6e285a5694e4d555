// Command kplane-realm-sync is the identity realm's sync Job (see package realmsync): it makes
// the Keycloak realm what the component's representation says and prints what it changed.
//
//	kplane-realm-sync --realm /realm/realm.json
//
// Keycloak's address and administrator come from KEYCLOAK_URL, KEYCLOAK_ADMIN_USER and
// KEYCLOAK_ADMIN_PASSWORD (a Secret), its CA from KEYCLOAK_CA_FILE when set; each secret the
// representation holds a placeholder "${NAME}" for (the LDAP bind password, identity providers'
// client secrets) from the environment variable NAME (a Secret).
package main

import (
	// Root certificates compiled in: the image holds this binary alone (internal/images).
	_ "golang.org/x/crypto/x509roots/fallback"

	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/kplane/kplane/components/identity/realmsync"
	"github.com/kplane/kplane/internal/cli"
)

const usage = "usage: kplane-realm-sync [--realm /realm/realm.json] [--report-only] (Keycloak's URL and admin from KEYCLOAK_URL, KEYCLOAK_ADMIN_USER, KEYCLOAK_ADMIN_PASSWORD)"

func main() {
	cli.Main("kplane-realm-sync", usage, func(args []string) error {
		fs := flag.NewFlagSet("kplane-realm-sync", flag.ContinueOnError)
		realmFile := fs.String("realm", "/realm/realm.json", "the realm representation (the component's ConfigMap)")
		reportOnly := fs.Bool("report-only", false, "list what the realm does not declare instead of removing it")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return run(*realmFile, *reportOnly)
	})
}

func run(realmFile string, reportOnly bool) error {
	raw, err := os.ReadFile(realmFile)
	if err != nil {
		return err
	}
	var rep map[string]any
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("%s: %w", realmFile, err)
	}
	for _, env := range []string{"KEYCLOAK_URL", "KEYCLOAK_ADMIN_USER", "KEYCLOAK_ADMIN_PASSWORD"} {
		if os.Getenv(env) == "" {
			return fmt.Errorf("%s: required", env)
		}
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if file := os.Getenv("KEYCLOAK_CA_FILE"); file != "" {
		pem, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		tlsConfig.RootCAs = x509.NewCertPool()
		if !tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("KEYCLOAK_CA_FILE %s: no certificate", file)
		}
	}
	c := &realmsync.Client{BaseURL: os.Getenv("KEYCLOAK_URL"), AdminUser: os.Getenv("KEYCLOAK_ADMIN_USER"), AdminPassword: os.Getenv("KEYCLOAK_ADMIN_PASSWORD"),
		HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}, ReportOnly: reportOnly}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	changes, err := c.Apply(ctx, rep, os.LookupEnv)
	for _, ch := range changes {
		fmt.Println(ch)
	}
	if err != nil {
		return err
	}
	fmt.Printf("realm %v: %d changes\n", rep["realm"], len(changes))
	return nil
}
