// Command kplane-catalog serves the API catalog: the developer portal and the admin API, behind
// Keycloak login (docs/components/gateway.md).
//
//	kplane-catalog serve    --dir D --issuer URL --client-id ID --public-url URL [--listen :8080] [--swagger-ui DIR] [--ca-file F]
//	kplane-catalog validate --dir D
//
// The session key comes from KPLANE_CATALOG_SESSION_KEY and, for a confidential client, the
// client secret from KPLANE_CATALOG_CLIENT_SECRET (a Secret), never from flags.
package main

import (
	// Root certificates compiled in: the image holds this binary alone (internal/images).
	_ "golang.org/x/crypto/x509roots/fallback"

	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kplane/kplane/components/gateway/catalog"
	"github.com/kplane/kplane/internal/cli"
	"github.com/kplane/kplane/internal/trust"
)

const usage = "usage: kplane-catalog serve|validate [flags] (kplane-catalog <command> -h for the flags)"

func main() { cli.Main("kplane-catalog", usage, run) }

func run(args []string) error {
	if len(args) == 0 || (args[0] != "serve" && args[0] != "validate") {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", "/etc/kplane/catalog", "the folder with catalog.json and the documents")
	listen := fs.String("listen", ":8080", "address to serve on")
	issuer := fs.String("issuer", "", "the Keycloak realm's URL")
	clientID := fs.String("client-id", "", "the portal's Keycloak client")
	public := fs.String("public-url", "", "the portal's public URL (redirect URI: <url>/callback)")
	adminRole := fs.String("admin-role", "admin", "the client (or realm) role of API administrators")
	swagger := fs.String("swagger-ui", "/usr/share/swagger-ui", "swagger-ui-dist folder")
	caFile := fs.String("ca-file", "", "PEM CA of Keycloak's certificate (besides the system's)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	c, err := catalog.Load(ctx, *dir)
	if err != nil {
		return err
	}
	versions := 0
	for _, e := range c.Entries {
		versions += len(e.Loaded)
	}
	fmt.Printf("catalog: %d products, %d versions loaded and validated in %s\n", len(c.Entries), versions, time.Since(start).Round(time.Millisecond))
	if args[0] == "validate" {
		return nil
	}
	client := http.DefaultClient
	if *caFile != "" {
		tlsConfig, err := trust.Config(*caFile)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	}
	h, err := catalog.NewServer(ctx, catalog.Config{Catalog: c, Issuer: *issuer, ClientID: *clientID, ClientSecret: os.Getenv("KPLANE_CATALOG_CLIENT_SECRET"),
		PublicURL: *public, AdminRole: *adminRole, SessionKey: []byte(os.Getenv("KPLANE_CATALOG_SESSION_KEY")), SwaggerUIDir: *swagger, HTTPClient: client})
	if err != nil {
		return err
	}
	srv := catalog.HTTPServer(*listen, h)
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	fmt.Printf("serving on %s\n", *listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
