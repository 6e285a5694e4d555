package platform

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/kplane/kplane/components/backup"
	"github.com/kplane/kplane/components/gateway"
	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/identity"
	"github.com/kplane/kplane/components/mesh"
	"github.com/kplane/kplane/internal/field"
)

// Project is the Pulumi project name; config keys are "kplane:<key>".
const Project = "kplane"

// Config is the platform stack's configuration: one key per capability, each optional (absent:
// the capability is not installed), read from the environment's stack config.
type Config struct {
	// Environment name (dev, staging, prod ...), exported and used in resource names.
	Environment string
	// Kubeconfig of the target cluster: a path or the file's content (secret).
	Kubeconfig pulumi.StringOutput
	// Charts (kplane:charts) is a directory of unpacked charts named after the official ones
	// (base, istiod, gateway, cni, velero, prometheus, grafana, kiali-server, jaeger, kong): an
	// air-gapped mirror. A component's chart with no source of its own is taken from there.
	Charts string
	// Images (kplane:images) is the registry holding kplane's own images, e.g.
	// registry.example.com/kplane (`make images`, docs/images.md): an image argument of kplane's
	// left empty becomes <Images>/<name>@<the digest this source builds>.
	Images string
	// Security is the hardened cluster (kplane:security): always installed.
	Security hardenedcluster.Args
	// Identity is the identity realm (kplane:identity).
	Identity *identity.Args
	// Backup is Velero, its schedules and the snapshots (kplane:backup).
	Backup *Backup
	// Mesh is Istio and its add-ons (kplane:mesh).
	Mesh *Mesh
	// Gateway is the API gateway and its catalog (kplane:gateway).
	Gateway *Gateway
}

// OptOut leaves one team namespace out of a capability that covers every team namespace by
// default; the reason is kept in the outputs.
type OptOut struct {
	Namespace string `json:"namespace"`
	Reason    string `json:"reason"`
}

// Backup is kplane:backup: Velero with the environment's own schedules, plus a schedule that
// covers every team namespace and one for the platform's own namespaces.
type Backup struct {
	backup.VeleroArgs
	// Teams: the schedule of every team namespace (default daily at 01:00, kept 30 days).
	Teams Coverage `json:"teams,omitempty"`
	// Platform: the schedule of the platform's namespaces (identity, mesh, gateway, secrets) and
	// of Namespaces (e.g. the one holding Keycloak's database).
	Platform Coverage `json:"platform,omitempty"`
	// OptOut: team namespaces left out of the team schedule and the restore drill.
	OptOut []OptOut `json:"optOut,omitempty"`
	// EtcdSnapshots, CSISnapshots and RestoreDrill: see the backup component.
	EtcdSnapshots *backup.EtcdSnapshotsArgs `json:"etcdSnapshots,omitempty"`
	CSISnapshots  *backup.CSISnapshotsArgs  `json:"csiSnapshots,omitempty"`
	RestoreDrill  *backup.RestoreDrillArgs  `json:"restoreDrill,omitempty"`
}

// Coverage is a schedule kplane writes for a set of namespaces.
type Coverage struct {
	Cron string `json:"cron,omitempty"`
	TTL  string `json:"ttl,omitempty"`
	// Namespaces added to it (platform only).
	Namespaces []string `json:"namespaces,omitempty"`
}

// Mesh is kplane:mesh: the mesh component's arguments; every team namespace joins the mesh
// (STRICT mTLS, deny by default, its services from kplane:security.services) unless opted out.
type Mesh struct {
	mesh.Args
	OptOut []OptOut `json:"optOut,omitempty"`
}

// Gateway is kplane:gateway: the gateway component's arguments. Left empty, tokens come from
// the identity realm (issuer and JWKS), the engine is istio when there is a mesh (its first
// gateway), and the consumers become the realm's API clients.
type Gateway struct {
	gateway.Args
}

// keys are the config keys read strictly, with the doc of each.
var keys = []struct {
	key, doc string
	target   func(c *Config) any
}{
	{"security", "docs/components/hardenedcluster.md", func(c *Config) any { return &c.Security }},
	{"identity", "docs/components/identity.md", func(c *Config) any { c.Identity = &identity.Args{}; return c.Identity }},
	{"backup", "docs/components/backup.md", func(c *Config) any { c.Backup = &Backup{}; return c.Backup }},
	{"mesh", "docs/components/mesh.md", func(c *Config) any { c.Mesh = &Mesh{}; return c.Mesh }},
	{"gateway", "docs/components/gateway.md", func(c *Config) any { c.Gateway = &Gateway{}; return c.Gateway }},
}

// LoadConfig reads and strictly decodes the stack config: every misspelt key and every value of
// the wrong type is an error at its path (kplane:backup.schedules[0].ttl), all at once.
func LoadConfig(ctx *pulumi.Context) (*Config, error) {
	cfg := config.New(ctx, Project)
	c := &Config{Environment: cfg.Require("environment"), Charts: cfg.Get("charts"), Images: cfg.Get("images")}
	kc, err := cfg.TrySecret("kubeconfig")
	if err != nil {
		return nil, fmt.Errorf("config kplane:kubeconfig is required: the path or content of the target cluster's kubeconfig (kplane --kubeconfig PATH, or pulumi up --config kplane:kubeconfig=PATH)")
	}
	c.Kubeconfig = kc
	raw := map[string]string{}
	for _, k := range keys {
		raw[k.key] = cfg.Get(k.key)
	}
	return c, DecodeConfig(c, raw)
}

// DecodeConfig decodes each capability's raw JSON value into c (absent: not installed).
func DecodeConfig(c *Config, raw map[string]string) error {
	var errs field.ErrorList
	for _, k := range keys {
		if raw[k.key] == "" {
			continue
		}
		p := field.NewPath(Project + ":" + k.key)
		if e := field.Decode(p, raw[k.key], k.target(c)); len(e) > 0 {
			for _, one := range e {
				one.Detail += " (" + k.doc + ")"
			}
			errs = append(errs, e...)
		}
	}
	return errs.OrNil()
}

// FromConfig decodes and composes the platform a stack's config values describe ("kplane:<key>"
// -> its JSON or string value), as the program does but without a Pulumi context.
func FromConfig(config map[string]string) (*Config, *Composed, error) {
	c := &Config{Environment: config[Project+":environment"], Charts: config[Project+":charts"], Images: config[Project+":images"]}
	raw := map[string]string{}
	for _, k := range keys {
		raw[k.key] = config[Project+":"+k.key]
	}
	if err := DecodeConfig(c, raw); err != nil {
		return c, nil, err
	}
	p, err := Compose(c)
	return c, p, err
}

// SecurityFor is the hardened cluster's arguments of the composed platform a stack's config
// describes (policies.SecurityFor): the policy pack judges a preview by what the cluster
// enforces, the platform's own namespaces included.
// Invalid arguments are the program's to report (it stops before any resource): the pack
// judges by what the composition would install.
func SecurityFor(config map[string]string) (*hardenedcluster.Args, error) {
	_, p, err := FromConfig(config)
	if p == nil {
		return nil, err
	}
	return &p.Security, nil
}
