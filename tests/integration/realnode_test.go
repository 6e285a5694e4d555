package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	kplaneimages "github.com/kplane/kplane/components/images"
	"github.com/kplane/kplane/internal/images"
	"github.com/kplane/kplane/tests/testbed"
)

// TestRealNodes: two real nodes (containerd, runc with seccomp, the CNI bridge, a kubelet and
// kube-proxy of the control plane's release, each node in a network namespace of its own) on a
// local control plane, with CoreDNS as the cluster DNS. A restricted pod built here serves HTTP on
// one node, the kubelet probes it, a pod on the other node reaches it by its Service's name (the
// cluster DNS), through its ClusterIP (kube-proxy) and across the nodes (the host routes the pod
// networks), and its log comes back through the kubelet. Each of kplane's own images, by the
// digest reference the components make, runs there under the restricted profile. After
// Delete nothing is left on the host: processes, mounts, network namespaces and interfaces,
// cgroups.
func TestRealNodes(t *testing.T) {
	integration(t) // beside the KWOK tests, which make no network namespaces, links or cgroups
	require.Equal(t, 0, os.Getuid(), "real nodes need root (network namespaces, cgroups, mounts)")
	ctx := context.Background()
	podNetnsBefore := cniNetns(t)
	begin := time.Now()
	c, err := testbed.Start(ctx, "real", t.TempDir(), testbed.Options{RealNodes: 2})
	require.NoError(t, err)
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = c.Delete()
		}
	})
	t.Logf("control plane and 2 real nodes Ready in %.1f s, with the cluster DNS %.1f s", c.ReadyIn.Seconds(), time.Since(begin).Seconds())
	slots, err := os.ReadFile(filepath.Join(c.Dir, "nodes", "slots"))
	require.NoError(t, err)

	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	echo, err := images.Build(ctx, root, images.Image{Name: "echo", Package: "./tests/testbed/echo"})
	require.NoError(t, err)
	require.NoError(t, c.ImportImages(ctx, map[string]v1.Image{"kplane.local/echo:test": echo}))

	cs, err := c.Clientset()
	require.NoError(t, err)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kplane.io/real-node=true"})
	require.NoError(t, err)
	require.Len(t, nodes.Items, 2)

	require.Eventually(t, func() bool { // the service account controller's first round
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}, 30*time.Second, 200*time.Millisecond)
	server := testbed.RestrictedPod("server", "kplane.local/echo:test", "serve", ":8080")
	server.Spec.NodeName = nodes.Items[0].Name
	server.Labels = map[string]string{"app": "echo"}
	server.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1,
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}}
	_, err = cs.CoreV1().Pods("default").Create(ctx, server, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "echo"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	start := time.Now()
	require.Eventually(t, func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "server", metav1.GetOptions{})
		return err == nil && testbed.PodReady(p)
	}, 120*time.Second, 500*time.Millisecond, "the server pod runs and the kubelet's probe reaches it")
	t.Logf("server pod Ready in %.1f s", time.Since(start).Seconds())
	require.Eventually(t, func() bool { // the Service's endpoint, which kube-proxy programs
		slices, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=echo"})
		return err == nil && len(slices.Items) == 1 && len(slices.Items[0].Endpoints) == 1 && ptr.Deref(slices.Items[0].Endpoints[0].Conditions.Ready, false)
	}, 30*time.Second, 200*time.Millisecond)

	// Across the nodes, by the Service's name (the cluster DNS, itself a pod behind a Service)
	// to its ClusterIP (kube-proxy's rules on the client's node).
	client := testbed.RestrictedPod("client", "kplane.local/echo:test", "get", "http://echo.default.svc.cluster.local/")
	client.Spec.NodeName = nodes.Items[1].Name
	client.Spec.RestartPolicy = corev1.RestartPolicyNever
	_, err = cs.CoreV1().Pods("default").Create(ctx, client, metav1.CreateOptions{})
	require.NoError(t, err)
	var phase corev1.PodPhase
	require.Eventually(t, func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "client", metav1.GetOptions{})
		if err == nil {
			phase = p.Status.Phase
		}
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed
	}, 120*time.Second, 500*time.Millisecond)
	require.Equal(t, corev1.PodSucceeded, phase, "the client pod: %s", podLog(ctx, cs, "client"))
	assert.Equal(t, "200 echo from server\n", podLog(ctx, cs, "client"), "the client's log, read through its kubelet")

	// kplane's own images, by the references the components make (registry/name@digest of this
	// source), run on the real node under the restricted profile.
	const registry = "registry.example.com/kplane"
	require.NoError(t, c.ImportKplaneImages(ctx, registry))
	for _, img := range images.All {
		pod := testbed.RestrictedPod(img.Name, kplaneimages.Ref(registry, img.Name), "--version")
		pod.Spec.RestartPolicy = corev1.RestartPolicyNever
		_, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	for _, img := range images.All {
		require.Eventually(t, func() bool {
			p, err := cs.CoreV1().Pods("default").Get(ctx, img.Name, metav1.GetOptions{})
			return err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed)
		}, 60*time.Second, 500*time.Millisecond, img.Name)
		assert.Equal(t, img.Name+" (devel)\n", podLog(ctx, cs, img.Name), "%s by digest", img.Name)
	}

	require.NoError(t, c.Delete())
	deleted = true
	for _, k := range strings.Fields(string(slots)) {
		assert.NoFileExists(t, "/run/netns/kplane-n"+k, "the node's network namespace")
		assert.Error(t, exec.Command("ip", "link", "show", "kpn"+k).Run(), "the node's veth pair")
		cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/kplane-n" + k)
		assert.Empty(t, cgroups, "the node's cgroups")
		routes, err := exec.Command("ip", "route", "show", "10.244."+k+".0/24").Output()
		assert.NoError(t, err)
		assert.Empty(t, strings.TrimSpace(string(routes)), "the host's route to the node's pods")
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.NotContains(t, string(mounts), c.Dir, "mounts under the cluster's folder")
	assert.Equal(t, podNetnsBefore, cniNetns(t), "the pods' network namespaces")
}

func podLog(ctx context.Context, cs kubernetes.Interface, name string) string {
	raw, err := cs.CoreV1().Pods("default").GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(raw)
}

// cniNetns are the pods' network namespaces on the host (containerd's /run/netns/cni-*).
func cniNetns(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob("/run/netns/cni-*")
	require.NoError(t, err)
	return names
}
