// Package addon is how kplane components install upstream software: the official Helm chart at
// a pinned version, rendered by the Kubernetes provider (helm/v4 Chart: every object becomes a
// Pulumi resource, so previews show them and policy packs check them), with a source override
// for air-gapped users (a mirror repository or a local chart directory or archive). Install is
// the base a component's install arguments embed: the chart, the user's values, and the images
// the add-on runs, which must be pinned by digest.
package addon

import (
	"net/url"
	"os"
	"strings"

	"github.com/kplane/kplane/internal/field"
	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Chart says where a chart comes from. Components fill the official repository, name and
// version; users override what they must.
type Chart struct {
	// Repo is the chart repository (https://... or oci://...), e.g. a mirror.
	Repo string `json:"repo,omitempty"`
	// Name is the chart's name in Repo.
	Name string `json:"name,omitempty"`
	// Version pins the chart version.
	Version string `json:"version,omitempty"`
	// Path is a local chart directory or .tgz; when set, Repo and Name are not used.
	Path string `json:"path,omitempty"`
}

// Or returns s with its empty fields taken from def (the component's pinned official chart).
// A Path given by the user replaces the repository entirely.
func (s Chart) Or(def Chart) Chart {
	if s.Path != "" {
		if s.Version == "" {
			s.Version = def.Version
		}
		return s
	}
	if s.Repo == "" {
		s.Repo = def.Repo
	}
	if s.Name == "" {
		s.Name = def.Name
	}
	if s.Version == "" {
		s.Version = def.Version
	}
	return s
}

// Validate checks a chart after Or; the errors' paths are the chart's keys (repo, path ...),
// for the caller to put under the argument (field.ErrorList.Merge).
func (s Chart) Validate() error {
	var errs field.ErrorList
	if s.Path != "" {
		if _, err := os.Stat(s.Path); err != nil {
			errs.Add(field.Invalid(field.Root().Child("path"), s.Path, "no such chart directory or archive; give the path of the unpacked chart (the folder with Chart.yaml)"))
		}
		return errs.OrNil()
	}
	u, err := url.Parse(s.Repo)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "oci") || u.Host == "" {
		errs.Add(field.Invalid(field.Root().Child("repo"), s.Repo, "give a chart repository URL (https://... or oci://...), or path for a local chart"))
	}
	if s.Name == "" || strings.ContainsAny(s.Name, "/ ") {
		errs.Add(field.Invalid(field.Root().Child("name"), s.Name, "give the chart's name in the repository"))
	}
	if s.Version == "" {
		errs.Add(field.Required(field.Root().Child("version"), "pin the chart version"))
	}
	return errs.OrNil()
}

// Args are the helm/v4 Chart arguments installing this source as release into namespace.
func (s Chart) Args(release, namespace string, values map[string]any) *helmv4.ChartArgs {
	args := &helmv4.ChartArgs{
		Name:      pulumi.String(release),
		Namespace: pulumi.String(namespace),
		Values:    pulumi.ToMap(values),
	}
	if s.Version != "" {
		args.Version = pulumi.String(s.Version)
	}
	switch {
	case s.Path != "":
		args.Chart = pulumi.String(s.Path)
	case strings.HasPrefix(s.Repo, "oci://"):
		args.Chart = pulumi.String(strings.TrimSuffix(s.Repo, "/") + "/" + s.Name)
	default:
		args.Chart = pulumi.String(s.Name)
		args.RepositoryOpts = &helmv4.RepositoryOptsArgs{Repo: pulumi.String(s.Repo)}
	}
	return args
}

// Merge returns base with over laid on top: maps merge key by key, anything else in over wins.
// Components compute base; users' Values come as over.
func Merge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = Merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}
