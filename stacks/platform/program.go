// Package platform is the stack program for one cluster's platform: the six capabilities an
// environment file describes (kplane:security, identity, backup, mesh, gateway), composed and
// wired to each other. Its Program is what users' `pulumi up` runs (through cmd/kplane-platform)
// and what kplane's Automation API driver runs inline.
package platform

import (
	"cmp"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/gateway"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/mesh"
)

// Program composes the platform components for one cluster. Every argument of every capability
// is validated, and every reference between them resolved, before the first resource is
// registered, so bad input creates nothing.
func Program(ctx *pulumi.Context) error {
	c, err := LoadConfig(ctx)
	if err != nil {
		return err
	}
	p, err := Compose(c)
	if err != nil {
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
	return p.Deploy(ctx, c.Environment, pulumi.Providers(k8s))
}

// Deploy registers the composed components: the hardened cluster first (its team namespaces
// are where the others' objects go), then the rest, and exports a summary per capability.
func (p *Composed) Deploy(ctx *pulumi.Context, env string, provider pulumi.ResourceOption) error {
	hc, err := hardenedcluster.NewHardenedCluster(ctx, env, &p.Security, provider)
	if err != nil {
		return err
	}
	after := []pulumi.ResourceOption{provider, pulumi.DependsOn([]pulumi.Resource{hc})}
	summary := pulumi.Map{"security": pulumi.Map{
		"namespaces":        hc.Namespaces,
		"admissionPolicies": hc.AdmissionPolicies,
		"exemptions":        exemptions(p.Security.Exemptions()),
	}}
	if p.Identity != nil {
		realm, err := identity.NewRealm(ctx, env+"-identity", p.Identity, after...)
		if err != nil {
			return err
		}
		ctx.Export("issuer", realm.Issuer)
		ctx.Export("authenticationConfig", realm.AuthenticationConfig)
		summary["identity"] = pulumi.Map{"issuer": realm.Issuer, "namespace": pulumi.String(identity.Namespace),
			"adminConsole":   pulumi.String(p.Identity.KeycloakURL + "/admin/" + cmp.Or(p.Identity.Realm, "kplane") + "/console/"),
			"accountConsole": pulumi.String(p.Identity.KeycloakURL + "/realms/" + cmp.Or(p.Identity.Realm, "kplane") + "/account/"),
			"tools":          pulumi.ToStringArray(toolNames(p.Identity))}
	}
	var meshDep []pulumi.Resource
	if p.Mesh != nil {
		m, err := mesh.NewMesh(ctx, env+"-mesh", p.Mesh, after...)
		if err != nil {
			return err
		}
		meshDep = []pulumi.Resource{m}
		summary["mesh"] = pulumi.Map{"tag": m.Tag, "namespaces": pulumi.ToStringArray(meshNamespaces(p.Mesh)),
			"optedOut": pulumi.ToStringMap(p.OptedOut["mesh"])}
	}
	if p.Gateway != nil {
		g, err := gateway.NewGateway(ctx, env+"-gateway", p.Gateway, append(after, pulumi.DependsOn(meshDep))...)
		if err != nil {
			return err
		}
		summary["gateway"] = pulumi.Map{"url": g.URL, "catalog": g.CatalogURL, "engine": pulumi.String(string(p.Gateway.Engine)), "issuer": pulumi.String(p.Gateway.Tokens.Issuer)}
	}
	if p.Backup != nil {
		b, err := p.Backup.deploy(ctx, env, after)
		if err != nil {
			return err
		}
		summary["backup"] = b
	}
	ctx.Export("environment", pulumi.String(env))
	ctx.Export("namespaces", hc.Namespaces)
	ctx.Export("serviceAccounts", hc.ServiceAccounts)
	ctx.Export("admissionPolicies", hc.AdmissionPolicies)
	ctx.Export("platform", summary)
	return nil
}

func (b *ComposedBackup) deploy(ctx *pulumi.Context, env string, opts []pulumi.ResourceOption) (pulumi.Map, error) {
	v, err := backup.NewVelero(ctx, env+"-backup", &b.Velero, opts...)
	if err != nil {
		return nil, err
	}
	schedules := pulumi.Map{}
	for _, s := range b.Velero.Schedules {
		schedules[s.Name] = pulumi.Map{"cron": pulumi.String(s.Cron), "ttl": pulumi.String(s.TTL), "namespaces": pulumi.ToStringArray(s.Namespaces)}
	}
	out := pulumi.Map{"storageLocation": v.StorageLocation, "schedules": schedules}
	if b.EtcdSnapshots != nil {
		e, err := backup.NewEtcdSnapshots(ctx, env+"-etcd", b.EtcdSnapshots, opts...)
		if err != nil {
			return nil, err
		}
		out["etcdSnapshots"] = e.CronJob
	}
	if b.CSISnapshots != nil {
		if _, err := backup.NewCSISnapshots(ctx, env+"-csi", b.CSISnapshots, opts...); err != nil {
			return nil, err
		}
	}
	if b.RestoreDrill != nil {
		if _, err := backup.NewRestoreDrill(ctx, env+"-drill", b.RestoreDrill, append(opts, pulumi.DependsOn([]pulumi.Resource{v}))...); err != nil {
			return nil, err
		}
		out["restoreDrill"] = pulumi.ToStringArray(b.RestoreDrill.Namespaces)
	}
	return out, nil
}

func exemptions(list []hardenedcluster.Exemption) pulumi.StringMap {
	out := pulumi.StringMap{}
	for _, e := range list {
		out[e.Namespace] = pulumi.String(e.Reason)
	}
	return out
}

func toolNames(a *identity.Args) []string {
	var out []string
	for _, t := range a.Tools {
		out = append(out, t.Name)
	}
	return out
}

func meshNamespaces(a *mesh.Args) []string {
	var out []string
	for _, t := range a.Teams {
		out = append(out, t.Namespace)
	}
	return out
}
