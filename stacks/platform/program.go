// Package platform is the stack program for one cluster's platform. Its Program is what users'
// `pulumi up` runs (through ./cmd) and what kplane's Automation API driver runs inline.
package platform

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/internal/field"
)

// Project is the Pulumi project name; config keys are "kplane:<key>".
const Project = "kplane"

// Config is the platform stack's configuration, read from the environment's stack config.
type Config struct {
	// Environment name (dev, staging, prod ...), exported and used in resource names.
	Environment string
	// Kubeconfig of the target cluster: a path or the file's content (secret).
	Kubeconfig pulumi.StringOutput
	// Security is the hardened-cluster arguments (kplane:security).
	Security hardenedcluster.Args
	// Identity is the identity realm's arguments (kplane:identity), when the cluster trusts one.
	Identity *identity.Args
}

// LoadConfig reads and strictly decodes the stack config: an unknown or misspelt key is an
// error naming the key, not a silently ignored setting.
func LoadConfig(ctx *pulumi.Context) (*Config, error) {
	cfg := config.New(ctx, Project)
	c := &Config{Environment: cfg.Require("environment")}
	kc, err := cfg.TrySecret("kubeconfig")
	if err != nil {
		return nil, fmt.Errorf("config kplane:kubeconfig is required: the path or content of the target cluster's kubeconfig (kplane --kubeconfig PATH, or pulumi up --config kplane:kubeconfig=PATH)")
	}
	c.Kubeconfig = kc
	if err := decode(cfg.Get("security"), &c.Security); err != nil {
		return nil, fmt.Errorf("config kplane:security: %v (see docs/components/hardenedcluster.md for the fields)", err)
	}
	if raw := cfg.Get("identity"); raw != "" {
		c.Identity = &identity.Args{}
		if err := decode(raw, c.Identity); err != nil {
			return nil, fmt.Errorf("config kplane:identity: %v (see docs/components/identity.md for the fields)", err)
		}
	}
	return c, nil
}

// decode reads a config value strictly (unknown keys are errors); empty leaves v as it is.
func decode(raw string, v any) error {
	if raw == "" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Program composes the platform components for one cluster.
func Program(ctx *pulumi.Context) error {
	c, err := LoadConfig(ctx)
	if err != nil {
		return err
	}
	// Validate every component's arguments before the first resource is registered, so bad
	// input creates nothing.
	var errs field.ErrorList
	errs.Merge(field.NewPath(Project+":security"), c.Security.Validate())
	if c.Identity != nil {
		errs.Merge(field.NewPath(Project+":identity"), c.Identity.Validate())
	}
	if err := errs.OrNil(); err != nil {
		return err
	}
	k8s, err := kubernetes.NewProvider(ctx, "cluster", &kubernetes.ProviderArgs{
		Kubeconfig:               c.Kubeconfig,
		EnableServerSideApply:    pulumi.Bool(true),
		DeleteUnreachable:        pulumi.Bool(false),
		SuppressHelmHookWarnings: pulumi.Bool(true),
	})
	if err != nil {
		return err
	}
	hc, err := hardenedcluster.NewHardenedCluster(ctx, c.Environment, &c.Security, pulumi.Providers(k8s))
	if err != nil {
		return err
	}
	if c.Identity != nil {
		// After the hardened cluster: its team namespaces hold the teams' RoleBindings.
		realm, err := identity.NewRealm(ctx, c.Environment+"-identity", c.Identity, pulumi.Providers(k8s), pulumi.DependsOn([]pulumi.Resource{hc}))
		if err != nil {
			return err
		}
		ctx.Export("issuer", realm.Issuer)
		ctx.Export("authenticationConfig", realm.AuthenticationConfig)
	}
	ctx.Export("environment", pulumi.String(c.Environment))
	ctx.Export("namespaces", hc.Namespaces)
	ctx.Export("serviceAccounts", hc.ServiceAccounts)
	ctx.Export("admissionPolicies", hc.AdmissionPolicies)
	return nil
}
