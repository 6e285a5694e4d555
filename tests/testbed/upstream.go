package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kplane/kplane/internal/images"
)

// UpstreamRegistry is where the real-pod bed's upstream images are, as environments/dev
// references them (a team's own registry mirror in a real environment).
const UpstreamRegistry = "registry.example.com"

// upstreamImage is an image of upstream software the components install, made here as its
// project's Dockerfile makes it: the same program at the same path, entrypoint and user, from the
// static binaries tools/build.sh images builds (KPLANE_UPSTREAM_IMAGES).
type upstreamImage struct {
	repository string            // under UpstreamRegistry
	files      map[string]string // path in the image -> file in KPLANE_UPSTREAM_IMAGES ("" : tests/testbed/cp)
	entrypoint []string
	user       string
}

var upstreamImages = map[string]upstreamImage{
	// velero/velero: the server runs /velero (the chart's command).
	"velero": {"velero/velero", map[string]string{"/velero": "velero-server"}, []string{"/velero"}, images.User},
	// velero/velero-plugin-for-aws: its init container copies /plugins into Velero's plugin folder.
	"velero-plugin-for-aws": {"velero/velero-plugin-for-aws", map[string]string{"/plugins/velero-plugin-for-aws": "velero-plugin-for-aws", "/bin/cp": ""},
		[]string{"/bin/cp", "-r", "/plugins/.", "/target"}, images.User},
	// istio/pilot: istiod, with the proxies' bootstrap template, as Istio's user 1337.
	"pilot": {"istio/pilot", map[string]string{"/usr/local/bin/pilot-discovery": "pilot-discovery",
		"/var/lib/istio/envoy/envoy_bootstrap_tmpl.json": "envoy_bootstrap_tmpl.json"}, []string{"/usr/local/bin/pilot-discovery"}, "1337:1337"},
	// istio/install-cni: Istio's CNI node agent (run as root, privileged, by its chart) and the
	// plugin it copies onto the node.
	"install-cni": {"istio/install-cni", map[string]string{"/usr/local/bin/install-cni": "install-cni", "/opt/cni/bin/istio-cni": "istio-cni"},
		[]string{"/usr/local/bin/install-cni"}, ""},
	// openpolicyagent/gatekeeper: the manager (controller and admission webhook).
	"gatekeeper": {"openpolicyagent/gatekeeper", map[string]string{"/manager": "manager"}, []string{"/manager"}, images.User},
}

// UpstreamImages are the upstream images by reference (UpstreamRegistry/<repository>:kplane;
// ImportImages adds each by digest too), and the by-digest references by short name (velero,
// velero-plugin-for-aws, pilot, install-cni, gatekeeper): what an environment pins.
func UpstreamImages(ctx context.Context) (map[string]v1.Image, map[string]string, error) {
	dir := os.Getenv("KPLANE_UPSTREAM_IMAGES")
	if dir == "" {
		return nil, nil, fmt.Errorf("KPLANE_UPSTREAM_IMAGES is not set: run `tools/build.sh images` and `eval \"$(make -s env)\"`")
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, nil, err
	}
	cp, err := images.Compile(ctx, root, "./tests/testbed/cp")
	if err != nil {
		return nil, nil, err
	}
	built, refs := map[string]v1.Image{}, map[string]string{}
	for short, u := range upstreamImages {
		var files []images.File
		for path, src := range u.files {
			content := cp
			if src != "" {
				if content, err = os.ReadFile(filepath.Join(dir, src)); err != nil {
					return nil, nil, fmt.Errorf("image %s: %w (tools/build.sh images)", u.repository, err)
				}
			}
			files = append(files, images.File{Path: path, Content: content, Exec: filepath.Ext(path) != ".json"})
		}
		slices.SortFunc(files, func(a, b images.File) int { return strings.Compare(a.Path, b.Path) })
		img, err := images.FromFiles(u.repository, files, u.entrypoint, u.user)
		if err != nil {
			return nil, nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, nil, err
		}
		repo := UpstreamRegistry + "/" + u.repository
		built[repo+":kplane"], refs[short] = img, repo+"@"+d.String()
	}
	return built, refs, nil
}
