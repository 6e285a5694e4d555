package images

import (
	"archive/tar"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/images"
)

// TestImagesAreReproducibleAndMinimal: building an image twice gives one digest; the image holds
// its static binary alone, runs it as a non-root user, and has no timestamps.
func TestImagesAreReproducibleAndMinimal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images")
	}
	img := Image{Name: "kplane-admission", Package: "./cmd/kplane-admission"}
	first, err := Build(context.Background(), "../..", img)
	require.NoError(t, err)
	second, err := Build(context.Background(), "../..", img)
	require.NoError(t, err)
	d1, _ := first.Digest()
	d2, _ := second.Digest()
	assert.Equal(t, d1, d2, "same source, same digest")

	cfg, err := first.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"/kplane-admission"}, cfg.Config.Entrypoint)
	assert.Equal(t, User, cfg.Config.User)
	assert.True(t, cfg.Created.Unix() == 0)
	layers, err := first.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	require.NoError(t, err)
	assert.Equal(t, "kplane-admission", h.Name)
	assert.Equal(t, 65532, h.Uid)
	f, err := os.CreateTemp(t.TempDir(), "bin")
	require.NoError(t, err)
	_, err = io.Copy(f, tr)
	require.NoError(t, err)
	f.Close()
	_, err = tr.Next()
	assert.Equal(t, io.EOF, err, "one file: the binary")
	bin, err := elf.Open(f.Name())
	require.NoError(t, err)
	defer bin.Close()
	assert.Equal(t, elf.EM_X86_64, bin.Machine)
	for _, p := range bin.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "static: no dynamic loader in an empty image")
	}
}

// TestDefaultDigestsAreTheBuiltOnes: the digests the components default to (components/images)
// are what `make images` builds from this source; after a change, `make images-defaults`.
func TestDefaultDigestsAreTheBuiltOnes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images")
	}
	for _, img := range All {
		image, err := Build(context.Background(), "../..", img)
		require.NoError(t, err)
		d, err := image.Digest()
		require.NoError(t, err)
		assert.Equal(t, images.Digests[img.Name], d.String(), "%s: run `make images-defaults` after changing its source", img.Name)
	}
}

// TestFromFiles: an image of several files has their folders (root's, made once, parents
// first), the files owned by the image's user (executables 0555, others 0444), and refuses a
// path that is not clean and absolute.
func TestFromFiles(t *testing.T) {
	img, err := FromFiles("x", []File{{Path: "/bin/x", Content: []byte("x"), Exec: true},
		{Path: "/usr/share/x/a.css", Content: []byte("a")}, {Path: "/usr/share/x/b.js", Content: []byte("b")}}, []string{"/bin/x"}, User)
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	var got []string
	tr := tar.NewReader(rc)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		got = append(got, fmt.Sprintf("%s %o %d", h.Name, h.Mode, h.Uid))
	}
	assert.Equal(t, []string{"bin/ 755 0", "usr/ 755 0", "usr/share/ 755 0", "usr/share/x/ 755 0",
		"bin/x 555 65532", "usr/share/x/a.css 444 65532", "usr/share/x/b.js 444 65532"}, got)
	for _, bad := range []string{"bin/x", "/bin/../x", "/bin//x"} {
		_, err := FromFiles("x", []File{{Path: bad}}, nil, User)
		assert.ErrorContains(t, err, "a clean absolute path", bad)
	}
}
