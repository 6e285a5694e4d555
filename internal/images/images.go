// Package images builds kplane's own container images without a Docker engine: each command
// that runs in the cluster is compiled as a static linux/amd64 binary (trimmed paths, no build
// ID, no VCS stamp) and put alone on an empty base, as user 65532, with go-containerregistry. Its
// root certificates are compiled into it (golang.org/x/crypto/x509roots/fallback), so the image
// needs no other file. The same source and toolchain give the same digest.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is one of kplane's images: its name and the command it runs.
type Image struct {
	Name    string // e.g. kplane-catalog
	Package string // e.g. ./cmd/kplane-catalog
}

// All are the images the components run.
var All = []Image{
	{"kplane-admission", "./cmd/kplane-admission"},
	{"kplane-backup", "./cmd/kplane-backup"},
	{"kplane-catalog", "./cmd/kplane-catalog"},
	{"kplane-etcd-snapshot", "./cmd/kplane-etcd-snapshot"},
	{"kplane-nodecheck", "./cmd/kplane-nodecheck"},
	{"kplane-realm-sync", "./cmd/kplane-realm-sync"},
	{"kplane-vault", "./cmd/kplane-vault"},
}

// User is the image's user: not root, and no name to look up.
const User = "65532:65532"

// Build compiles img's command in the module at dir and returns the image.
func Build(ctx context.Context, dir string, img Image) (v1.Image, error) {
	tmp, err := os.MkdirTemp("", "kplane-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, img.Name)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", bin, img.Package)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v: %s", img.Package, err, out)
	}
	content, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return FromBinary(img.Name, content)
}

// FromBinary is the image of one static binary, /name on an empty base, run as User (the same
// content gives the same digest).
func FromBinary(name string, content []byte) (v1.Image, error) {
	layer, err := binaryLayer("/"+name, content)
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	image, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := image.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Entrypoint = []string{"/" + name}
	cfg.Config.User = User
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": name, "org.opencontainers.image.source": "https://github.com/kplane/kplane"}
	image, err = mutate.ConfigFile(image, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(image, v1.Time{Time: time.Unix(0, 0).UTC()})
}

// binaryLayer is a layer holding one executable at path, owned by User, with a fixed time.
func binaryLayer(path string, content []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: path[1:], Mode: 0o555, Size: int64(len(content)), Uid: 65532, Gid: 65532,
		ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// WriteLayout writes the images into an OCI layout at dir (one index, each image annotated with
// its name as org.opencontainers.image.ref.name) and returns their digests by name.
func WriteLayout(dir string, built map[string]v1.Image) (map[string]string, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, err
	}
	digests := map[string]string{}
	for _, img := range All {
		image, ok := built[img.Name]
		if !ok {
			continue
		}
		d, err := image.Digest()
		if err != nil {
			return nil, err
		}
		if err := p.AppendImage(image, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": img.Name})); err != nil {
			return nil, err
		}
		digests[img.Name] = d.String()
	}
	return digests, nil
}
