package platform

import (
	"cmp"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/gateway"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/mesh"
	"github.com/kplane/kplane/internal/component"
)

// Platform is the composed platform of one cluster.
type Platform struct {
	pulumi.ResourceState
	// Summary: per capability, what it installed (endpoints, namespaces, consoles, schedules,
	// admission exemptions with their reasons).
	Summary pulumi.MapOutput `pulumi:"summary"`
	// The hardened cluster's outputs.
	Namespaces        pulumi.StringMapOutput   `pulumi:"namespaces"`
	ServiceAccounts   pulumi.StringMapOutput   `pulumi:"serviceAccounts"`
	AdmissionPolicies pulumi.StringArrayOutput `pulumi:"admissionPolicies"`
	// The realm's issuer and the AuthenticationConfiguration trusting it (empty without identity).
	Issuer               pulumi.StringOutput `pulumi:"issuer"`
	AuthenticationConfig pulumi.StringOutput `pulumi:"authenticationConfig"`
}

// NewPlatform validates args and every reference between the capabilities (Compose), then
// registers the components in the cluster of the given provider: the hardened cluster first
// (its team namespaces are where the others' objects go), then the rest.
func NewPlatform(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Platform, error) {
	if args != nil {
		args.stack = ctx.Stack()
	}
	r := &Platform{}
	args, err := component.Register(ctx, "Platform", name, args, r, opts...)
	if err != nil {
		return nil, err
	}
	p, err := Compose(args)
	if err != nil {
		return nil, err
	}
	if err := p.deploy(ctx, name, r, pulumi.Parent(r)); err != nil {
		return nil, err
	}
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{"summary": r.Summary, "namespaces": r.Namespaces,
		"serviceAccounts": r.ServiceAccounts, "admissionPolicies": r.AdmissionPolicies, "issuer": r.Issuer})
}

// Validate is Compose's verdict: every argument and every reference, all errors at once.
func (a *Args) Validate() error {
	_, err := Compose(a)
	return err
}

func (p *Composed) deploy(ctx *pulumi.Context, env string, r *Platform, provider pulumi.ResourceOption) error {
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
		r.Issuer, r.AuthenticationConfig = realm.Issuer, realm.AuthenticationConfig
		summary["identity"] = pulumi.Map{"issuer": realm.Issuer, "namespace": pulumi.String(identity.Namespace),
			"adminConsole":   pulumi.String(strings.TrimSuffix(p.Identity.KeycloakURL, "/") + "/admin/" + cmp.Or(p.Identity.Realm, "kplane") + "/console/"),
			"accountConsole": pulumi.String(p.Identity.Issuer() + "/account/"),
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
	r.Summary = summary.ToMapOutput()
	r.Namespaces, r.ServiceAccounts, r.AdmissionPolicies = hc.Namespaces, hc.ServiceAccounts, hc.AdmissionPolicies
	if p.Identity == nil {
		r.Issuer, r.AuthenticationConfig = pulumi.String("").ToStringOutput(), pulumi.String("").ToStringOutput()
	}
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
