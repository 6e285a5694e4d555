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
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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

// ImportImages puts the images (by reference) into every real node's containerd, where the
// kubelet finds them (namespace k8s.io), as a registry pull would.
func (c *Cluster) ImportImages(ctx context.Context, imgs map[string]v1.Image) error {
	if len(imgs) == 0 {
		return nil
	}
	refs := map[name.Reference]v1.Image{}
	for ref, img := range imgs {
		r, err := name.ParseReference(ref)
		if err != nil {
			return err
		}
		refs[r] = img
	}
	archive := filepath.Join(c.Dir, "images.tar")
	defer os.Remove(archive)
	if err := tarball.MultiRefWriteToFile(archive, refs); err != nil {
		return err
	}
	bin, err := nodeBin()
	if err != nil {
		return err
	}
	for _, sock := range c.RealNodeSockets() {
		out, err := exec.CommandContext(ctx, filepath.Join(bin, "ctr"), "--address", sock, "--namespace", "k8s.io",
			"images", "import", archive).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr images import into %s: %v: %s", sock, err, strings.TrimSpace(string(out)))
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
