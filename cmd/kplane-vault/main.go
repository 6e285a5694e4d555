// Command kplane-vault is the hardened cluster's Vault Job (see package vaultbootstrap):
//
//	kplane-vault bootstrap --plan /plan/plan.json --reviewer-token-file /reviewer/token
//	kplane-vault rotate --path payments/ledger/db --keys password [--length 32]
//
// Vault's address and CA come from VAULT_ADDR and VAULT_CACERT. bootstrap authenticates with
// VAULT_TOKEN (a token allowed to configure auth methods, mounts and policies, from a Secret);
// rotate logs in with the pod's own ServiceAccount token through the cluster's Kubernetes auth
// method, as the rotator role that may only write the rotated paths.
package main

import (
	// Root certificates compiled in: the image holds this binary alone (internal/images).
	_ "golang.org/x/crypto/x509roots/fallback"

	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/kplane/kplane/components/hardenedcluster/vaultbootstrap"
	"github.com/kplane/kplane/internal/cli"
)

const usage = "usage: kplane-vault bootstrap|rotate [flags] (kplane-vault <command> -h for the flags; Vault from VAULT_ADDR and VAULT_TOKEN)"

func main() {
	cli.Main("kplane-vault", usage, func(args []string) error {
		if len(args) == 0 {
			return errors.New(usage)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		switch args[0] {
		case "bootstrap":
			return bootstrap(ctx, args[1:])
		case "rotate":
			return rotate(ctx, args[1:])
		default:
			return fmt.Errorf("unknown command %q: use bootstrap or rotate", args[0])
		}
	})
}

func client() (*vault.Client, error) {
	cfg := vault.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	if os.Getenv("VAULT_ADDR") == "" {
		return nil, fmt.Errorf("VAULT_ADDR: required, Vault's https:// address")
	}
	return vault.NewClient(cfg)
}

func bootstrap(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bootstrap", flag.ExitOnError)
	planFile := fs.String("plan", "/plan/plan.json", "the component's plan")
	reviewer := fs.String("reviewer-token-file", "/reviewer/token", "token of the ServiceAccount Vault reviews tokens with")
	_ = fs.Parse(args)
	raw, err := os.ReadFile(*planFile)
	if err != nil {
		return err
	}
	var plan vaultbootstrap.Plan
	if err := json.Unmarshal(raw, &plan); err != nil {
		return fmt.Errorf("%s: %w", *planFile, err)
	}
	jwt, err := os.ReadFile(*reviewer)
	if err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	if c.Token() == "" {
		return fmt.Errorf("VAULT_TOKEN: required for bootstrap (mount it from the Secret named in Secrets.Bootstrap.TokenSecret)")
	}
	changed, err := vaultbootstrap.Bootstrap(ctx, c, plan, strings.TrimSpace(string(jwt)))
	if err != nil {
		return err
	}
	fmt.Printf("vault bootstrap: %d changes\n", len(changed))
	for _, ch := range changed {
		fmt.Println("  " + ch)
	}
	return nil
}

func rotate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rotate", flag.ExitOnError)
	mount := fs.String("mount", "secret", "KV v2 mount")
	path := fs.String("path", "", "secret path under the mount, e.g. payments/ledger/db")
	keys := fs.String("keys", "", "comma-separated keys to regenerate")
	length := fs.Int("length", 32, "random bytes per value")
	authPath := fs.String("auth-path", "kubernetes", "the cluster's Kubernetes auth mount")
	role := fs.String("role", "kplane-secret-rotator", "Vault role to log in as")
	tokenFile := fs.String("token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "the pod's ServiceAccount token")
	_ = fs.Parse(args)
	if *path == "" || *keys == "" {
		return fmt.Errorf("--path and --keys are required")
	}
	c, err := client()
	if err != nil {
		return err
	}
	jwt, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	login, err := c.Logical().WriteWithContext(ctx, "auth/"+*authPath+"/login", map[string]any{"role": *role, "jwt": strings.TrimSpace(string(jwt))})
	if err != nil {
		return fmt.Errorf("log in as %s: %w", *role, err)
	}
	c.SetToken(login.Auth.ClientToken)
	version, err := vaultbootstrap.Rotate(ctx, c, *mount, *path, strings.Split(*keys, ","), *length)
	if err != nil {
		return err
	}
	fmt.Printf("rotated %s/%s keys %s: now version %d at %s\n", *mount, *path, *keys, version, time.Now().UTC().Format(time.RFC3339))
	return nil
}
