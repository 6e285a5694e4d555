package platform

import (
	"cmp"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/kplane/kplane/components/addon"
	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/gateway"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/images"
	"github.com/kplane/kplane/components/mesh"
	"github.com/kplane/kplane/internal/field"
)

// Composed is the environment's components with their arguments wired to each other: every
// value one component takes from another is filled here, from that component's arguments,
// never copied by hand into the environment file.
type Composed struct {
	Security hardenedcluster.Args
	Identity *identity.Args
	Mesh     *mesh.Args
	Gateway  *gateway.Args
	Backup   *ComposedBackup
	// TeamNamespaces are the namespaces of the hardened cluster's teams, each with its team.
	TeamNamespaces map[string]string
	// OptedOut: capability -> namespace -> reason.
	OptedOut map[string]map[string]string
}

// ComposedBackup is the backup capability's components.
type ComposedBackup struct {
	Velero        backup.VeleroArgs
	EtcdSnapshots *backup.EtcdSnapshotsArgs
	CSISnapshots  *backup.CSISnapshotsArgs
	RestoreDrill  *backup.RestoreDrillArgs
}

// Schedules kplane writes for the composed platform.
const (
	TeamSchedule     = "kplane-teams"
	PlatformSchedule = "kplane-platform"
)

// Compose wires the capabilities of c and validates the whole: each component's arguments and
// every reference from one capability to another, every error at its argument's path
// (backup.teams.ttl; the stack adds its config namespace: kplane:backup.teams.ttl).
func Compose(c *Args) (*Composed, error) {
	out := &Composed{Security: c.Security, Identity: c.Identity, TeamNamespaces: map[string]string{},
		OptedOut: map[string]map[string]string{}}
	for _, t := range c.Security.Teams {
		for _, ns := range t.Namespaces {
			out.TeamNamespaces[ns] = t.Name
		}
	}
	sec := &out.Security
	sec.Admission.Gatekeeper.Chart = c.chart(sec.Admission.Gatekeeper.Chart, hardenedcluster.GatekeeperChart)
	sec.Secrets.Operator.Chart = c.chart(sec.Secrets.Operator.Chart, hardenedcluster.ExternalSecretsChart)
	c.securityImages(sec)
	var errs field.ErrorList
	errs.Merge(field.NewPath("security"), sec.Validate())
	if c.Identity != nil {
		errs = append(errs, out.checkIdentityTeams(c.Identity)...)
	}
	if c.Mesh != nil {
		errs = append(errs, out.composeMesh(c)...)
	}
	if c.Gateway != nil {
		errs = append(errs, out.composeGateway(c)...)
	}
	if c.Backup != nil {
		errs = append(errs, out.composeBackup(c)...)
	}
	if out.Identity != nil {
		out.Identity = out.identityWithTools(c)
		errs.Merge(field.NewPath("identity"), out.Identity.Validate())
	}
	out.Security.Admission.PlatformNamespaces = append(slices.Clone(c.Security.Admission.PlatformNamespaces), out.platformNamespaces()...)
	if out.Mesh != nil {
		errs.Merge(field.NewPath("mesh"), out.Mesh.Validate())
	}
	if out.Gateway != nil {
		errs.Merge(field.NewPath("gateway"), out.Gateway.Validate())
	}
	if b := out.Backup; b != nil {
		// The component's own paths (etcdSnapshots.bucket ...) are the environment file's.
		p := field.NewPath("backup")
		typed := b.Velero
		typed.Schedules = c.Backup.Schedules // kplane's schedules are checked at teams and platform
		errs.Merge(p, typed.Validate())
		for _, v := range []interface{ Validate() error }{b.EtcdSnapshots, b.CSISnapshots, b.RestoreDrill} {
			if !reflect.ValueOf(v).IsNil() {
				errs.Merge(p, v.Validate())
			}
		}
	}
	return out, errs.OrNil()
}

// image fills an empty image argument with kplane's own image name in Images.
func (c *Args) image(ref *string, name string) {
	if *ref == "" && c.Images != "" {
		*ref = images.Ref(strings.TrimSuffix(c.Images, "/"), name)
	}
}

// securityImages fills the hardened cluster's kplane images (copies: the config is not changed).
func (c *Args) securityImages(sec *hardenedcluster.Args) {
	if b := sec.Secrets.Bootstrap; b != nil {
		boot := *b
		c.image(&boot.Image, "kplane-vault")
		sec.Secrets.Bootstrap = &boot
	}
	if len(sec.NodeChecks.Pools) > 0 {
		c.image(&sec.NodeChecks.Image, "kplane-nodecheck")
	}
	if len(sec.Admission.Exceptions) > 0 {
		c.image(&sec.Admission.ExpiryImage, "kplane-admission")
	}
}

// knownTeams lists the team namespaces for an error's fix.
func (o *Composed) knownTeams() string {
	return "known team namespaces: " + strings.Join(slices.Sorted(maps.Keys(o.TeamNamespaces)), ", ") + " (the hardened cluster's teams)"
}

func (o *Composed) checkIdentityTeams(a *identity.Args) field.ErrorList {
	var errs field.ErrorList
	for i, t := range a.Teams {
		for j, ns := range t.Namespaces {
			if _, ok := o.TeamNamespaces[ns]; !ok {
				errs.Add(field.Invalid(field.NewPath("identity", "teams").Index(i).Child("namespaces").Index(j), ns, "not a team namespace; "+o.knownTeams()))
			}
		}
	}
	return errs
}

// optOuts checks a capability's opt-outs and returns them by namespace.
func (o *Composed) optOuts(capability string, list []OptOut) (map[string]string, field.ErrorList) {
	var errs field.ErrorList
	out := map[string]string{}
	for i, x := range list {
		p := field.NewPath(capability, "optOut").Index(i)
		if _, ok := o.TeamNamespaces[x.Namespace]; !ok {
			errs.Add(field.Invalid(p.Child("namespace"), x.Namespace, "not a team namespace; "+o.knownTeams()))
		}
		if strings.TrimSpace(x.Reason) == "" {
			errs.Add(field.Required(p.Child("reason"), "why this namespace is left out (auditors read it in the outputs)"))
		}
		out[x.Namespace] = x.Reason
	}
	o.OptedOut[capability] = out
	return out, errs
}

// chart is src, or the chart of that name in the charts directory when src names no source
// of its own and the directory has it.
func (c *Args) chart(src addon.Chart, def addon.Chart) addon.Chart {
	if c.Charts == "" || src.Path != "" || src.Repo != "" {
		return src
	}
	dir := filepath.Join(c.Charts, def.Name)
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		return src
	}
	src.Path = dir
	return src
}

// composeMesh onboards every team namespace not opted out (its services from the hardened
// cluster's), and takes charts from the charts directory.
func (o *Composed) composeMesh(c *Args) field.ErrorList {
	m := c.Mesh.Args
	m.Teams = slices.Clone(m.Teams)
	m.Revisions = slices.Clone(m.Revisions)
	m.Gateways = slices.Clone(m.Gateways)
	optOut, errs := o.optOuts("mesh", c.Mesh.OptOut)
	declared := map[string]bool{}
	for i := range m.Teams {
		t := &m.Teams[i]
		declared[t.Namespace] = true
		if _, ok := o.TeamNamespaces[t.Namespace]; ok {
			t.Existing = true // the hardened cluster made it
		}
		if _, out := optOut[t.Namespace]; out {
			errs.Add(field.Invalid(field.NewPath("mesh", "teams").Index(i).Child("namespace"), t.Namespace, "also in optOut; keep one"))
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(o.TeamNamespaces)) {
		if _, out := optOut[ns]; out || declared[ns] {
			continue
		}
		team := mesh.Team{Namespace: ns, Existing: true, Services: []mesh.Service{}}
		for _, s := range c.Security.Services {
			if s.Namespace == ns {
				team.Services = append(team.Services, mesh.Service{Name: s.Name})
			}
		}
		m.Teams = append(m.Teams, team)
	}
	m.BaseChart = c.chart(m.BaseChart, mesh.BaseChart)
	m.CNIChart = c.chart(m.CNIChart, mesh.CNIChart)
	for i := range m.Revisions {
		m.Revisions[i].Chart = c.chart(m.Revisions[i].Chart, mesh.IstiodChart)
	}
	for i := range m.Gateways {
		m.Gateways[i].Chart = c.chart(m.Gateways[i].Chart, mesh.GatewayChart)
	}
	if ob := m.Observability; ob != nil {
		obs := *ob
		obs.Prometheus = c.chart(obs.Prometheus, mesh.PrometheusChart)
		obs.Grafana = c.chart(obs.Grafana, mesh.GrafanaChart)
		obs.Kiali = c.chart(obs.Kiali, mesh.KialiChart)
		obs.Jaeger = c.chart(obs.Jaeger, mesh.JaegerChart)
		if c.Identity != nil && obs.Login == nil {
			obs.Login = &mesh.Login{Issuer: c.Identity.Issuer(), GrafanaClient: "grafana", KialiClient: "kiali"}
		}
		m.Observability = &obs
	}
	o.Mesh = &m
	return errs
}

// composeGateway fills the tokens from the realm, binds an istio gateway to the mesh's, and
// lets the gateway call exactly the services its routes publish.
func (o *Composed) composeGateway(c *Args) field.ErrorList {
	g := c.Gateway.Args
	p := field.NewPath("gateway")
	var errs field.ErrorList
	if g.Tokens.Issuer == "" {
		if c.Identity == nil {
			errs.Add(field.Required(p.Child("tokens", "issuer"), "the realm whose tokens the routes accept: add the identity realm, or give the issuer"))
		} else {
			g.Tokens.Issuer = c.Identity.Issuer()
		}
	}
	if g.Engine == "" && o.Mesh != nil {
		g.Engine = gateway.EngineIstio
	}
	if g.Engine == gateway.EngineIstio && g.Istio == nil {
		if o.Mesh == nil || len(o.Mesh.Gateways) == 0 {
			errs.Add(field.Required(p.Child("istio"), "engine istio binds to a mesh gateway: add a gateway to the mesh, or use engine kong"))
		} else {
			g.Istio = &gateway.IstioGateway{Name: o.Mesh.Gateways[0].Name, Namespace: o.Mesh.Gateways[0].Namespace}
		}
	}
	if cat := g.Catalog; cat != nil {
		catalog := *cat
		c.image(&catalog.Image, "kplane-catalog")
		if catalog.IssuerCA == "" && c.Identity != nil {
			catalog.IssuerCA = c.Identity.IssuerCA
		}
		g.Catalog = &catalog
	}
	if k := g.Kong; k != nil {
		kong := *k
		kong.Chart = c.chart(kong.Chart, gateway.KongChart)
		g.Kong = &kong
	}
	teams := map[string]bool{}
	for _, t := range c.Security.Teams {
		teams[t.Name] = true
	}
	known := "known teams: " + strings.Join(slices.Sorted(maps.Keys(teams)), ", ") + " (the hardened cluster's teams)"
	for i, api := range g.APIs {
		for j, owner := range api.Owners {
			if !teams[owner] {
				errs.Add(field.Invalid(p.Child("apis").Index(i).Child("owners").Index(j), owner, "no such team; "+known))
			}
		}
		for j, v := range api.Versions {
			if _, ok := o.TeamNamespaces[v.Upstream.Namespace]; !ok {
				errs.Add(field.Invalid(p.Child("apis").Index(i).Child("versions").Index(j).Child("upstream", "namespace"), v.Upstream.Namespace, "not a team namespace; "+o.knownTeams()))
			}
		}
	}
	for i, cons := range g.Consumers {
		if cons.Owner != "" && !teams[cons.Owner] {
			errs.Add(field.Invalid(p.Child("consumers").Index(i).Child("owner"), cons.Owner, "no such team; "+known))
		}
	}
	o.Gateway = &g
	if o.Mesh != nil {
		errs = append(errs, o.admitGatewayCalls(g)...)
	}
	return errs
}

// admitGatewayCalls makes each published upstream a service of its meshed team with the gateway
// among its callers: the gateway reaches what it publishes, and nothing else.
func (o *Composed) admitGatewayCalls(g gateway.Args) field.ErrorList {
	if g.Engine != gateway.EngineIstio || g.Istio == nil {
		// Kong's proxies have no mesh identity: STRICT mutual TLS refuses their calls.
		return field.ErrorList{field.Invalid(field.NewPath("gateway", "engine"), string(g.Engine),
			"with a mesh the gateway is the mesh's own (engine istio): Kong's proxies have no mesh identity and STRICT mutual TLS refuses their calls")}
	}
	caller := "gateway/" + g.Istio.Name
	for _, api := range g.APIs {
		for _, v := range api.Versions {
			i := slices.IndexFunc(o.Mesh.Teams, func(t mesh.Team) bool { return t.Namespace == v.Upstream.Namespace })
			if i < 0 {
				continue // opted out of the mesh: no sidecar, no authorization
			}
			t := &o.Mesh.Teams[i]
			t.Services = slices.Clone(t.Services)
			j := slices.IndexFunc(t.Services, func(s mesh.Service) bool { return s.Name == v.Upstream.Service })
			if j < 0 {
				t.Services = append(t.Services, mesh.Service{Name: v.Upstream.Service})
				j = len(t.Services) - 1
			}
			if !slices.Contains(t.Services[j].Callers, caller) {
				t.Services[j].Callers = append(slices.Clone(t.Services[j].Callers), caller)
			}
		}
	}
	return nil
}

// composeBackup puts every team namespace not opted out into the team schedule, the platform's
// namespaces into the platform schedule, and refuses schedules of namespaces nobody owns.
func (o *Composed) composeBackup(c *Args) field.ErrorList {
	b := c.Backup
	v := b.VeleroArgs
	v.Schedules = slices.Clone(v.Schedules)
	p := field.NewPath("backup")
	optOut, errs := o.optOuts("backup", b.OptOut)
	platform := o.platformNamespaceNames(c)
	for i, s := range v.Schedules {
		for j, ns := range s.Namespaces {
			_, team := o.TeamNamespaces[ns]
			if ns != "*" && !team && !slices.Contains(platform, ns) && !slices.Contains(b.Platform.Namespaces, ns) {
				errs.Add(field.Invalid(p.Child("schedules").Index(i).Child("namespaces").Index(j), ns, "no team owns it and no platform component runs there; "+o.knownTeams()))
			}
		}
	}
	var teams []string
	for _, ns := range slices.Sorted(maps.Keys(o.TeamNamespaces)) {
		if _, out := optOut[ns]; !out {
			teams = append(teams, ns)
		}
	}
	if len(teams) > 0 {
		v.Schedules = append(v.Schedules, backup.Schedule{Name: TeamSchedule, Cron: cmp.Or(b.Teams.Cron, "0 1 * * *"), TTL: cmp.Or(b.Teams.TTL, "720h"), Namespaces: teams,
			RPO: b.Teams.RPO, RTO: b.Teams.RTO})
	}
	errs = append(errs, backup.CheckTiming(p.Child("teams"), cmp.Or(b.Teams.Cron, "0 1 * * *"), cmp.Or(b.Teams.TTL, "720h"))...)
	errs = append(errs, backup.CheckTiming(p.Child("platform"), cmp.Or(b.Platform.Cron, "30 1 * * *"), cmp.Or(b.Platform.TTL, "2160h"))...)
	errs = append(errs, backup.CheckObjectives(p.Child("teams"), cmp.Or(b.Teams.Cron, "0 1 * * *"), b.Teams.RPO, b.Teams.RTO)...)
	errs = append(errs, backup.CheckObjectives(p.Child("platform"), cmp.Or(b.Platform.Cron, "30 1 * * *"), b.Platform.RPO, b.Platform.RTO)...)
	if len(b.Teams.Namespaces) > 0 {
		errs.Add(field.Invalid(p.Child("teams", "namespaces"), nil, "the team schedule covers every team namespace; leave namespaces out with optOut"))
	}
	platform = append(platform, b.Platform.Namespaces...)
	v.Schedules = append(v.Schedules, backup.Schedule{Name: PlatformSchedule, Cron: cmp.Or(b.Platform.Cron, "30 1 * * *"), TTL: cmp.Or(b.Platform.TTL, "2160h"), Namespaces: platform,
		RPO: b.Platform.RPO, RTO: b.Platform.RTO})
	if in := v.Install; in != nil {
		inst := *in
		inst.Chart = c.chart(inst.Chart, backup.VeleroChart)
		v.Install = &inst
	}
	out := &ComposedBackup{Velero: v}
	if e := b.EtcdSnapshots; e != nil {
		etcd := *e
		c.image(&etcd.Image, "kplane-etcd-snapshot")
		out.EtcdSnapshots = &etcd
	}
	if s := b.CSISnapshots; s != nil {
		out.Velero.CSI = true // Velero snapshots the volumes too
		csi := *s
		c.image(&csi.Image, "kplane-backup")
		out.CSISnapshots = &csi
	}
	if d := b.RestoreDrill; d != nil {
		drill := *d
		c.image(&drill.Image, "kplane-backup")
		if len(drill.Namespaces) == 0 {
			drill.Namespaces = teams
		}
		drill.Bucket = cmp.Or(drill.Bucket, v.Storage.Bucket)
		drill.S3Endpoint = cmp.Or(drill.S3Endpoint, v.Storage.URL)
		drill.VeleroNamespace = cmp.Or(drill.VeleroNamespace, v.Namespace)
		drill.Prefix = cmp.Or(drill.Prefix, v.Storage.Prefix, "velero/"+c.stack) // Velero's default prefix
		out.RestoreDrill = &drill
	}
	o.Backup = out
	return errs
}

// platformNamespaceNames are the namespaces the platform's components keep state in (backed up
// by the platform schedule).
func (o *Composed) platformNamespaceNames(c *Args) []string {
	var ns []string
	if c.Identity != nil {
		ns = append(ns, identity.Namespace)
	}
	if c.Security.Secrets.Bootstrap != nil {
		ns = append(ns, hardenedcluster.SecretsNamespace)
	}
	if c.Mesh != nil {
		ns = append(ns, mesh.SystemNamespace)
	}
	if c.Gateway != nil {
		ns = append(ns, cmp.Or(c.Gateway.Namespace, "kplane-gateway"))
	}
	return ns
}

// platformNamespaces are where the composed components run: held to the baseline, or exempt
// with the reason.
func (o *Composed) platformNamespaces() []hardenedcluster.PlatformNamespace {
	var out []hardenedcluster.PlatformNamespace
	add := func(name, component, exempt string) {
		out = append(out, hardenedcluster.PlatformNamespace{Name: name, Component: component, Exempt: exempt})
	}
	if o.Identity != nil {
		add(identity.Namespace, "identity (realm sync)", "")
	}
	if m := o.Mesh; m != nil {
		add(mesh.SystemNamespace, "mesh (istiod)", "")
		for _, g := range m.Gateways {
			add(g.Namespace, "mesh gateway "+g.Name, "Istio's gateway chart sets image \"auto\", which istiod's injection replaces with the proxy image at admission: the baseline would judge the placeholder")
		}
		if ob := m.Observability; ob != nil {
			add(cmp.Or(ob.Namespace, "istio-observability"), "mesh observability (Prometheus, Grafana, Kiali, Jaeger)", "")
		}
	}
	if g := o.Gateway; g != nil {
		add(cmp.Or(g.Namespace, "kplane-gateway"), "gateway (catalog, Kong)", "")
	}
	if b := o.Backup; b != nil {
		add(cmp.Or(b.Velero.Namespace, "velero"), "backup (Velero, restore drill)", "")
		if b.EtcdSnapshots != nil {
			add(cmp.Or(b.EtcdSnapshots.Namespace, backup.EtcdSnapshotNamespace), "backup (etcd snapshots)",
				"etcd snapshots read the control plane's etcd client certificate through a hostPath on a control-plane node")
		}
	}
	return out
}

// identityWithTools adds a tool client per tool the platform installs (Grafana, Kiali, the
// catalog) and an API client per gateway consumer, unless the environment declares them.
func (o *Composed) identityWithTools(c *Args) *identity.Args {
	a := *o.Identity
	if s := a.Sync; s != nil {
		sync := *s
		c.image(&sync.Image, "kplane-realm-sync")
		a.Sync = &sync
	}
	a.Tools = slices.Clone(a.Tools)
	a.APIClients = slices.Clone(a.APIClients)
	addTool := func(name string, redirects ...string) {
		if !slices.ContainsFunc(a.Tools, func(t identity.Tool) bool { return t.Name == name }) {
			a.Tools = append(a.Tools, identity.Tool{Name: name, RedirectURIs: redirects})
		}
	}
	if m := o.Mesh; m != nil && m.Observability != nil && m.Observability.Login != nil {
		ob := m.Observability
		addTool(ob.Login.GrafanaClient, strings.TrimSuffix(ob.GrafanaURL, "/")+"/login/generic_oauth")
		if !slices.Contains(ob.Without, "kiali") {
			addTool(ob.Login.KialiClient, strings.TrimSuffix(ob.KialiURL, "/")+"/kiali")
		}
	}
	if g := o.Gateway; g != nil {
		if cat := g.Catalog; cat != nil {
			addTool(cmp.Or(cat.ClientID, "api-catalog"), "https://"+cat.Host+"/callback")
		}
		for _, cons := range g.Consumers {
			if !slices.ContainsFunc(a.APIClients, func(x identity.APIClient) bool { return x.ClientID == cons.ClientID }) {
				a.APIClients = append(a.APIClients, identity.APIClient{ClientID: cons.ClientID, Owner: cons.Owner})
			}
		}
	}
	return &a
}
