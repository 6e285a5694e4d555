package addon

import (
	"regexp"

	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"

	"github.com/kplane/kplane/internal/field"
)

// Install is how a component installs an upstream add-on from its official chart: where the
// chart comes from (default: the component's pinned official chart) and the user's values,
// laid over the values the component computes. A component's install arguments embed it next
// to the images the add-on runs (json inlines it: chart and values sit beside the images).
type Install struct {
	Chart  Chart          `json:"chart,omitempty"`
	Values map[string]any `json:"values,omitempty"`
}

// Image is one image an add-on runs, under its argument's key.
type Image struct {
	Key, Ref string
}

var pinned = regexp.MustCompile(`^[^@\s]+/[^@\s]+@sha256:[0-9a-f]{64}$`)

// Pinned: ref names an image by digest (<registry>/<repository>@sha256:<64 hex>).
func Pinned(ref string) bool { return pinned.MatchString(ref) }

// Validate checks the add-on's declared constraints: every image pinned by digest (what was
// scanned and signed is what runs) and the chart, defaulted to official, usable. Paths are the
// install arguments' keys (image, chart.repo ...).
func (i Install) Validate(official Chart, images ...Image) error {
	var errs field.ErrorList
	for _, img := range images {
		if !Pinned(img.Ref) {
			errs.Add(field.Invalid(field.At("%s", img.Key), img.Ref, "pin it by digest (<registry>/<repository>@sha256:...)"))
		}
	}
	errs.Merge(field.At("chart"), i.Chart.Or(official).Validate())
	return errs.OrNil()
}

// Release is the helm/v4 Chart arguments installing the add-on as release into namespace: the
// official chart unless overridden, with the user's values laid over computed.
func (i Install) Release(official Chart, release, namespace string, computed map[string]any) *helmv4.ChartArgs {
	return i.Chart.Or(official).Args(release, namespace, Merge(computed, i.Values))
}
