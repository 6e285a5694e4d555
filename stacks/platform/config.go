package platform

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/identity"
	composed "github.com/kplane/kplane/components/platform"
	"github.com/kplane/kplane/internal/field"
)

// Project is the Pulumi project name; config keys are "kplane:<key>".
const Project = "kplane"

// Config is the platform stack's configuration, read from the environment's stack config: one
// key per capability (kplane:security, identity, backup, mesh, gateway), each optional but the
// first, and kplane:charts and kplane:images (docs/environments.md).
type Config struct {
	// Environment name (dev, staging, prod ...), exported and used in resource names.
	Environment string
	// Kubeconfig of the target cluster: a path or the file's content (secret).
	Kubeconfig pulumi.StringOutput
	// Platform is the composed platform's arguments.
	Platform composed.Args
}

// keys are the capabilities' config keys, read strictly, with the doc of each.
var keys = []struct {
	key, doc string
	target   func(a *composed.Args) any
}{
	{"security", "docs/components/hardenedcluster.md", func(a *composed.Args) any { return &a.Security }},
	{"identity", "docs/components/identity.md", func(a *composed.Args) any { a.Identity = &identity.Args{}; return a.Identity }},
	{"backup", "docs/components/backup.md", func(a *composed.Args) any { a.Backup = &composed.Backup{}; return a.Backup }},
	{"mesh", "docs/components/mesh.md", func(a *composed.Args) any { a.Mesh = &composed.Mesh{}; return a.Mesh }},
	{"gateway", "docs/components/gateway.md", func(a *composed.Args) any { a.Gateway = &composed.Gateway{}; return a.Gateway }},
}

// LoadConfig reads and strictly decodes the stack config: every misspelt key and every value of
// the wrong type is an error at its path (kplane:backup.schedules[0].ttl), all at once.
func LoadConfig(ctx *pulumi.Context) (*Config, error) {
	cfg := config.New(ctx, Project)
	c := &Config{Environment: cfg.Require("environment")}
	kc, err := cfg.TrySecret("kubeconfig")
	if err != nil {
		return nil, fmt.Errorf("config kplane:kubeconfig is required: the path or content of the target cluster's kubeconfig (kplane --kubeconfig PATH, or pulumi up --config kplane:kubeconfig=PATH)")
	}
	c.Kubeconfig = kc
	raw := map[string]string{"charts": cfg.Get("charts"), "images": cfg.Get("images")}
	for _, k := range keys {
		raw[k.key] = cfg.Get(k.key)
	}
	return c, decode(&c.Platform, raw)
}

// decode fills a from the config values by key (without the "kplane:" namespace).
func decode(a *composed.Args, raw map[string]string) error {
	a.Charts, a.Images = raw["charts"], raw["images"]
	var errs field.ErrorList
	for _, k := range keys {
		if raw[k.key] == "" {
			continue
		}
		if e := field.Decode(field.NewPath(Project+":"+k.key), raw[k.key], k.target(a)); len(e) > 0 {
			for _, one := range e {
				one.Detail += " (" + k.doc + ")"
			}
			errs = append(errs, e...)
		}
	}
	return errs.OrNil()
}

// Compose is composed.Compose with every error at the environment file's path (kplane:<key>...).
func Compose(a *composed.Args) (*composed.Composed, error) {
	p, err := composed.Compose(a)
	return p, field.Prefix(Project+":", err)
}

// FromConfig decodes and composes the platform a stack's config values describe ("kplane:<key>"
// -> its JSON or string value), as the program does but without a Pulumi context.
func FromConfig(config map[string]string) (*Config, *composed.Composed, error) {
	c := &Config{Environment: config[Project+":environment"]}
	raw := map[string]string{}
	for _, k := range append([]string{"charts", "images"}, keyNames()...) {
		raw[k] = config[Project+":"+k]
	}
	if err := decode(&c.Platform, raw); err != nil {
		return c, nil, err
	}
	p, err := Compose(&c.Platform)
	return c, p, err
}

func keyNames() []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.key)
	}
	return out
}

// SecurityFor is the hardened cluster's arguments of the composed platform a stack's config
// describes (policies.SecurityFor): the policy pack judges a preview by what the cluster
// enforces, the platform's own namespaces included. Invalid arguments are the program's to
// report (it stops before any resource): the pack judges by what the composition would install.
func SecurityFor(config map[string]string) (*hardenedcluster.Args, error) {
	_, p, err := FromConfig(config)
	if p == nil {
		return nil, err
	}
	return &p.Security, nil
}
