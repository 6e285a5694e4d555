package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// realNodesAPIServerArgs: the nodes reach the API server at their host ends, pods at the first
// one's (the kubernetes Service's endpoint), and the API server reaches the kubelets, and the
// admission webhooks and aggregated APIs served by pods at their pod addresses (the host routes
// to the pod networks; Service addresses exist only in the nodes' kube-proxy).
func realNodesAPIServerArgs(nodes []*realNode) []string {
	return []string{"--bind-address=0.0.0.0", "--advertise-address=" + nodes[0].hostIP(),
		"--kubelet-preferred-address-types=InternalIP", // the host resolves no node names
		"--endpoint-reconciler-type=lease",             // the kubernetes Service's endpoint, for pods
		"--enable-aggregator-routing=true"}             // webhooks' Services resolved to their endpoints
}

// startNodes starts the real nodes (none: nothing to do) and waits until they are Ready.
func startNodes(ctx context.Context, dir string, c config, server string, p pki, nodes []*realNode) error {
	if len(nodes) == 0 {
		return nil
	}
	if err := authorizeKubeletClient(ctx, filepath.Join(dir, "kubeconfig")); err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	for _, n := range nodes {
		if err := n.start(ctx, c, server, p); err != nil {
			return fmt.Errorf("node %s: %w", n.name, err)
		}
	}
	if err := waitNodesReady(ctx, filepath.Join(dir, "kubeconfig"), "kplane.io/real-node=true", len(nodes), 120*time.Second); err != nil {
		return fmt.Errorf("%w: see %s", err, filepath.Join(dir, "nodes", "*", "kubelet.log"))
	}
	return nil
}

// start writes the node's configuration (certificates, containerd's config, the CNI network,
// the kubelet's and kube-proxy's) and starts containerd, the kubelet and kube-proxy in its netns.
func (n *realNode) start(ctx context.Context, c config, server string, p pki) error {
	bin, cluster := c.nodeBin, c.name
	for _, d := range []string{"containerd/root", "containerd/state", "containerd/hosts/_default", "kubelet", "pod-logs", "cni/net.d", "cni/ipam", "cni/bin"} {
		if err := os.MkdirAll(n.path(d), 0o700); err != nil {
			return err
		}
	}
	// The node's own CNI plugin folder (a node's /opt/cni/bin): a CNI node agent (Istio's) may
	// add its plugin there without touching the tool cache or another node.
	for _, plugin := range cniPlugins {
		if err := copyFile(filepath.Join(bin, plugin), n.path(filepath.Join("cni/bin", plugin)), 0o755); err != nil {
			return err
		}
	}
	for _, s := range []certSpec{
		{name: n.name + "-kubelet-client", ca: "ca", cn: "system:node:" + n.name, orgs: []string{"system:nodes"}, client: true},
		{name: n.name + "-kubelet", ca: "ca", cn: n.name, server: true, ips: []net.IP{net.ParseIP(n.nodeIP())}, dns: []string{n.name}},
		{name: "kube-proxy", ca: "ca", cn: "system:kube-proxy", client: true},
	} {
		if !exists(p.path(s.name + ".crt")) {
			if err := p.issue(s); err != nil {
				return err
			}
		}
	}
	// The nodes reach the API server at their host end; its certificate names localhost.
	nodeServer := strings.Replace(server, "127.0.0.1", n.hostIP(), 1)
	if err := kubeconfig(n.path("kubelet.kubeconfig"), cluster, nodeServer, p, n.name+"-kubelet-client", "localhost"); err != nil {
		return err
	}
	if err := kubeconfig(n.path("kube-proxy.kubeconfig"), cluster, nodeServer, p, "kube-proxy", "localhost"); err != nil {
		return err
	}
	sock := n.path("containerd/containerd.sock")
	files := map[string]string{
		"containerd.toml":                      n.containerdConfig(bin, sock, c.sandboxImage),
		"cni/net.d/10-kplane.conflist":         n.cniConfig(),
		"containerd/hosts/_default/hosts.toml": "server = \"http://127.0.0.1:9\"\n", // every registry: the node's closed discard port
		"kubelet.yaml":                         n.kubeletConfig(p, sock, c.clusterDNS),
		"kube-proxy.yaml":                      n.kubeProxyConfig(),
		"resolv.conf":                          "# the node's own lookups: none (pods use the cluster DNS)\n",
	}
	for name, body := range files {
		if err := writeFile(n.path(name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	path := bin + ":/usr/sbin:/usr/bin:/sbin:/bin"
	if _, err := n.startProcess(ctx, filepath.Join(bin, "containerd"), path, "--config", n.path("containerd.toml")); err != nil {
		return err
	}
	if err := waitSocket(ctx, sock, 30*time.Second); err != nil {
		return fmt.Errorf("node %s: containerd: %w (see %s)", n.name, err, n.path("containerd.log"))
	}
	if _, err := n.startProcess(ctx, filepath.Join(bin, "kubelet"), path, "--config", n.path("kubelet.yaml"),
		"--kubeconfig", n.path("kubelet.kubeconfig"), "--root-dir", n.path("kubelet"), "--cert-dir", n.path("kubelet/pki"),
		"--hostname-override", n.name, "--node-ip", n.nodeIP(), "--node-labels", "kplane.io/real-node=true", "--v", "1"); err != nil {
		return err
	}
	_, err := n.startProcess(ctx, filepath.Join(bin, "kube-proxy"), path, "--config", n.path("kube-proxy.yaml"), "--v", "1")
	return err
}

// stop ends the node's components (SIGTERM, SIGKILL after 10 s), then cleans up.
func (n *realNode) stop() error {
	var wg sync.WaitGroup
	for _, cmd := range n.procs {
		if cmd.Process == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = cmd.Cancel()
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
			}
		}()
	}
	wg.Wait()
	return n.clean()
}

func (n *realNode) containerdConfig(bin, sock, sandboxImage string) string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = ""

[metrics]
  address = ""

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[5]q
  # no registry is reachable here (images come in by import): every pull goes to a closed port
  # and fails at once, instead of waiting on a name that cannot be resolved
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %[9]q

[plugins.'io.containerd.cri.v1.runtime']
  # no CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj below containerd's own
  restrict_oom_score_adj = true
  # the pods' network namespaces under the node's folder, not the host's /run/netns
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[6]q]
    conf_dir = %[7]q
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[8]q
        SystemdCgroup = false
`, n.path("containerd/root"), n.path("containerd/state"), sock, sock+".ttrpc", sandboxImage, n.path("cni/bin"), n.path("cni/net.d"), filepath.Join(bin, "runc"),
		n.path("containerd/hosts"))
}

// cniPlugins are the CNI plugins the nodes' network uses (tools/build.sh node builds them).
var cniPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func (n *realNode) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "kplane",
  "plugins": [
    {"type": "bridge", "bridge": "kpbr0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.path("cni/ipam"), n.podCIDR())
}

// kubeletConfig: the hardened kubelet kplane's node checks expect (no anonymous access, webhook
// authorization, no read-only port), on cgroup v1 with the cgroupfs driver under the node's
// cgroup, with eviction and image GC that ignore the host's shared disk.
func (n *realNode) kubeletConfig(p pki, sock, clusterDNS string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%[1]s
containerRuntimeEndpoint: unix://%[2]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[3]q}
authorization: {mode: Webhook}
readOnlyPort: 0
tlsCertFile: %[4]q
tlsPrivateKeyFile: %[5]q
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
clusterDomain: cluster.local
clusterDNS: [%[6]s]
resolvConf: %[7]q
podCIDR: %[8]s
podLogsDir: %[9]q
failSwapOn: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
maxPods: 110
`, n.cgroup(), sock, p.path("ca.crt"), p.path(n.name+"-kubelet.crt"), p.path(n.name+"-kubelet.key"), clusterDNS,
		n.path("resolv.conf"), n.podCIDR(), n.path("pod-logs"))
}

func (n *realNode) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: %[1]s
clientConnection: {kubeconfig: %[2]q}
clusterCIDR: 10.244.0.0/16
iptables: {masqueradeAll: true}
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
`, n.name, n.path("kube-proxy.kubeconfig"))
}

// authorizeKubeletClient lets the API server's kubelet client (logs, exec, port-forward, metrics)
// use the kubelets' API, as kubeadm binds it: system:kubelet-api-admin.
func authorizeKubeletClient(ctx context.Context, kubeconfigPath string) error {
	cs, err := clientset(kubeconfigPath)
	if err != nil {
		return err
	}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kplane:apiserver-kubelet-client"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "kube-apiserver-kubelet-client"}},
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
