package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kplane/kplane/internal/images"
)

// PauseImage is the real nodes' sandbox image (kcp's containerd pins it), built from
// tests/testbed/pause.
const PauseImage = "kplane.local/pause:3.10"

// nodeBin is the folder of the real nodes' binaries (tools/build.sh node): the kubelet's.
func nodeBin() (string, error) {
	kubelet, err := Binary("kubelet")
	if err != nil {
		return "", fmt.Errorf("real nodes: %w (tools/build.sh node)", err)
	}
	return filepath.Dir(kubelet), nil
}

// RealNodeSockets are the containerd sockets of the cluster's real nodes.
func (c *Cluster) RealNodeSockets() []string {
	socks, _ := filepath.Glob(filepath.Join(c.Dir, "nodes", "*", "containerd", "containerd.sock"))
	return socks
}

// ImportImages puts the images into every real node's containerd (namespace k8s.io, where the
// kubelet finds them), as a registry pull would: each under its tag reference and under its
// repository at its manifest digest (repo@sha256:...), the form kplane's components reference
// images by. The images go in as an OCI archive, so containerd keeps their manifests, and their
// digests, byte for byte.
func (c *Cluster) ImportImages(ctx context.Context, imgs map[string]v1.Image) error {
	if len(imgs) == 0 {
		return nil
	}
	dir, err := os.MkdirTemp(c.Dir, "images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	oci, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
	if err != nil {
		return err
	}
	digestRefs := map[string]string{} // tag reference -> repo@digest
	for ref, img := range imgs {
		tag, err := name.NewTag(ref)
		if err != nil {
			return fmt.Errorf("image %q: a tag reference (registry/repository:tag): %w", ref, err)
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		digestRefs[tag.Name()] = tag.Context().Name() + "@" + d.String()
		if err := oci.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": tag.Name()})); err != nil {
			return err
		}
	}
	archive := filepath.Join(dir, "images.tar")
	if out, err := exec.CommandContext(ctx, "tar", "-C", filepath.Join(dir, "oci"), "-cf", archive, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, out)
	}
	bin, err := nodeBin()
	if err != nil {
		return err
	}
	ctr := func(sock string, args ...string) error {
		out, err := exec.CommandContext(ctx, filepath.Join(bin, "ctr"), append([]string{"--address", sock, "--namespace", "k8s.io", "images"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr images %s (%s): %v: %s", args[0], sock, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for _, sock := range c.RealNodeSockets() {
		if err := ctr(sock, "import", archive); err != nil {
			return err
		}
		for tag, byDigest := range digestRefs {
			if err := ctr(sock, "tag", "--force", tag, byDigest); err != nil {
				return err
			}
		}
	}
	return nil
}

// buildPause builds the sandbox image from this module's tests/testbed/pause.
func buildPause(ctx context.Context) (v1.Image, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	return images.Build(ctx, root, images.Image{Name: "pause", Package: "./tests/testbed/pause"})
}

// moduleRoot is the folder of kplane's go.mod (the source the test bed runs from).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside kplane's module: the real nodes' pause image is built from its source")
	}
	return filepath.Dir(mod), nil
}

// cleanRealNodes undoes what the cluster's real nodes left after kcp was killed (kcp --clean-nodes).
func (c *Cluster) cleanRealNodes() error {
	if _, err := os.Stat(filepath.Join(c.Dir, "nodes", "slots")); err != nil {
		return nil
	}
	kcp, err := Binary("kcp")
	if err != nil {
		return err
	}
	if out, err := exec.Command(kcp, "--clean-nodes", "--dir", c.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("kcp --clean-nodes: %v: %s", err, out)
	}
	return nil
}

// RestrictedPod is a pod of image (imported, never pulled) that passes the restricted Pod Security
// Standard and kplane's own policies: non-root, RuntimeDefault seccomp, no privilege escalation,
// a read-only root filesystem, no capabilities, no service account token.
func RestrictedPod(name, image string, args ...string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		AutomountServiceAccountToken: ptr.To(false),
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{Name: "main", Image: image, ImagePullPolicy: corev1.PullNever, Args: args,
			SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
	}}
}

// PodReady: the pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ImportKplaneImages builds kplane's own images from this source (internal/images, what `make
// images` pushes) and puts them into the real nodes under registry, tagged dev and by digest: the
// references the components make (components/images.Ref).
func (c *Cluster) ImportKplaneImages(ctx context.Context, registry string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	built := map[string]v1.Image{}
	for _, img := range images.All {
		image, err := images.Build(ctx, root, img)
		if err != nil {
			return err
		}
		built[registry+"/"+img.Name+":dev"] = image
	}
	return c.ImportImages(ctx, built)
}

// HostAddress is the host's address as the real nodes' pods reach it: the API server's
// advertised address (the kubernetes Service's endpoint, the first node's host end). A server a
// test starts for pods listens there.
func (c *Cluster) HostAddress(ctx context.Context) (string, error) {
	cs, err := c.Clientset()
	if err != nil {
		return "", err
	}
	ep, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("the kubernetes Service's endpoints: %w", err)
	}
	if len(ep.Endpoints) == 0 || len(ep.Endpoints[0].Addresses) == 0 {
		return "", fmt.Errorf("the kubernetes Service has no endpoint: a cluster without real nodes advertises none")
	}
	return ep.Endpoints[0].Addresses[0], nil
}
