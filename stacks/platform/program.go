// Package platform is the stack program for one cluster's platform: it reads the environment
// file (kplane:security, identity, backup, mesh, gateway, charts, images) and hands it to the
// composed platform component (components/platform). Its Program is what users' `pulumi up` runs
// (through cmd/kplane-platform) and what kplane's Automation API driver runs inline.
package platform

import (
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	composed "github.com/kplane/kplane/components/platform"
)

// Program composes the platform for one cluster. Every argument of every capability is
// validated, and every reference between them resolved, before the first resource is
// registered, so bad input creates nothing.
func Program(ctx *pulumi.Context) error {
	return program(ctx, func(c *Config) (*kubernetes.Provider, error) {
		return kubernetes.NewProvider(ctx, "cluster", &kubernetes.ProviderArgs{
			Kubeconfig:               c.Kubeconfig,
			EnableServerSideApply:    pulumi.Bool(true),
			DeleteUnreachable:        pulumi.Bool(false),
			SuppressHelmHookWarnings: pulumi.Bool(true),
		})
	})
}

// RenderProgram composes the platform as Program does, but writes every object as YAML under
// dir instead of applying it (the Kubernetes provider's render mode: 0-crd/ and 1-manifest/).
// Helm charts are rendered for the cluster the ambient KUBECONFIG names (its version and APIs:
// the provider takes no kubeconfig in render mode); kplane:kubeconfig is not used.
func RenderProgram(dir string) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		return program(ctx, func(*Config) (*kubernetes.Provider, error) {
			return kubernetes.NewProvider(ctx, "render", &kubernetes.ProviderArgs{RenderYamlToDirectory: pulumi.String(dir), SuppressHelmHookWarnings: pulumi.Bool(true)})
		})
	}
}

func program(ctx *pulumi.Context, provider func(*Config) (*kubernetes.Provider, error)) error {
	c, err := LoadConfig(ctx)
	if err != nil {
		return err
	}
	if _, err := Compose(&c.Platform); err != nil {
		return err // at the environment file's paths, before the provider exists
	}
	k8s, err := provider(c)
	if err != nil {
		return err
	}
	p, err := composed.NewPlatform(ctx, c.Environment, &c.Platform, pulumi.Providers(k8s))
	if err != nil {
		return err
	}
	ctx.Export("environment", pulumi.String(c.Environment))
	ctx.Export("namespaces", p.Namespaces)
	ctx.Export("serviceAccounts", p.ServiceAccounts)
	ctx.Export("admissionPolicies", p.AdmissionPolicies)
	ctx.Export("platform", p.Summary)
	if c.Platform.Identity != nil {
		ctx.Export("issuer", p.Issuer)
		ctx.Export("authenticationConfig", p.AuthenticationConfig)
	}
	return nil
}
