// Package images builds kplane's own container images without a Docker engine: each command
// that runs in the cluster is compiled as a static linux/amd64 binary (trimmed paths, no build
// ID, no VCS stamp) and put on an empty base, as user 65532, with go-containerregistry, beside
// the files of another project it serves, if any (the catalog's swagger-ui). Its root
// certificates are compiled into it (golang.org/x/crypto/x509roots/fallback), so the image needs
// no other file. The same source, assets and toolchain give the same digest.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is one of kplane's images: its name, the command it runs and the files of another
// project it serves, if any.
type Image struct {
	Name    string // e.g. kplane-catalog
	Package string // e.g. ./cmd/kplane-catalog
	Assets  *Assets
}

// Assets are files of another project an image carries beside its command, from a folder of the
// tool cache (make tools) named by an environment variable.
type Assets struct {
	Env   string   // names the folder, e.g. KPLANE_SWAGGER_UI
	Dir   string   // where they are in the image
	Files []string // which of the folder's files
}

// All are the images the components run.
var All = []Image{
	{Name: "kplane-admission", Package: "./cmd/kplane-admission"},
	{Name: "kplane-backup", Package: "./cmd/kplane-backup"},
	// The catalog serves swagger-ui-dist's viewer (its --swagger-ui default), with its license.
	{Name: "kplane-catalog", Package: "./cmd/kplane-catalog", Assets: &Assets{Env: "KPLANE_SWAGGER_UI", Dir: "/usr/share/swagger-ui",
		Files: []string{"LICENSE", "NOTICE", "swagger-ui-bundle.js", "swagger-ui.css"}}},
	{Name: "kplane-etcd-snapshot", Package: "./cmd/kplane-etcd-snapshot"},
	{Name: "kplane-nodecheck", Package: "./cmd/kplane-nodecheck"},
	{Name: "kplane-realm-sync", Package: "./cmd/kplane-realm-sync"},
	{Name: "kplane-vault", Package: "./cmd/kplane-vault"},
}

// User is the image's user: not root, and no name to look up.
const User = "65532:65532"

// Build compiles img's command in the module at dir and returns the image.
func Build(ctx context.Context, dir string, img Image) (v1.Image, error) {
	content, err := Compile(ctx, dir, img.Package)
	if err != nil {
		return nil, err
	}
	files := []File{{Path: "/" + img.Name, Content: content, Exec: true}}
	if a := img.Assets; a != nil {
		src := os.Getenv(a.Env)
		if src == "" {
			return nil, fmt.Errorf("image %s: %s is not set: run `make tools` and `eval \"$(make -s env)\"`", img.Name, a.Env)
		}
		for _, f := range a.Files {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", img.Name, err)
			}
			files = append(files, File{Path: path.Join(a.Dir, f), Content: b})
		}
	}
	return FromFiles(img.Name, files, []string{"/" + img.Name}, User)
}

// Compile builds the command pkg of the module at dir as a static, reproducible linux/amd64
// binary and returns it.
func Compile(ctx context.Context, dir, pkg string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "kplane-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", bin, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v: %s", pkg, err, out)
	}
	return os.ReadFile(bin)
}

// File is one file of an image.
type File struct {
	Path    string // absolute
	Content []byte
	Exec    bool
}

// FromFiles is the image of files on an empty base (their folders made, owned by root), titled
// title, running entrypoint as user; the same files give the same digest.
func FromFiles(title string, files []File, entrypoint []string, user string) (v1.Image, error) {
	layer, err := filesLayer(files)
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
	cfg.Config.Entrypoint = entrypoint
	cfg.Config.User = user
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": title, "org.opencontainers.image.source": "https://github.com/kplane/kplane"}
	image, err = mutate.ConfigFile(image, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(image, v1.Time{Time: time.Unix(0, 0).UTC()})
}

// filesLayer is a layer holding the files (owned by User, read-only) and their folders, with a
// fixed time.
func filesLayer(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("image file %q: a clean absolute path", f.Path)
		}
		for d := path.Dir(f.Path); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) { // parents sort before their children
		if err := tw.WriteHeader(&tar.Header{Name: d[1:] + "/", Mode: 0o755, ModTime: time.Unix(0, 0), Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		mode := int64(0o444)
		if f.Exec {
			mode = 0o555
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.Path[1:], Mode: mode, Size: int64(len(f.Content)), Uid: 65532, Gid: 65532,
			ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, err
		}
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
