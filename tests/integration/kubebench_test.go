package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
	"github.com/kplane/kplane/tests/testbed"
)

// TestNodeChecksAgreeWithKubeBench: kube-bench and kplane's node checks judge the same node: the
// test bed's control plane in kubeadm's layout (kcp's flags as static pod manifests, its PKI, an
// etcd data folder) and a kubelet with the component's KubeletConfiguration and kubeadm's unit
// drop-in. kube-bench reads the components' flags from their running processes, so each runs as
// a stand-in process with exactly its manifest's command line, in a root of its own (a chroot in
// new mount and PID namespaces). Where both judge the same CIS item (PASS or FAIL), their
// verdicts agree; then a node weakened where both judge automatically is judged again.
func TestNodeChecksAgreeWithKubeBench(t *testing.T) {
	integration(t)
	if os.Getuid() != 0 {
		t.Skip("kube-bench runs in a chroot with namespaces of its own: needs root")
	}
	bench, err := testbed.Binary("kube-bench")
	require.NoError(t, err)
	c := testbed.StartN(t, 1, testbed.Options{NoNodes: true})[0]
	root := kubeadmNode(t, c.Dir)
	standIn := buildCommand(t, "github.com/kplane/kplane/tests/testbed/pause")

	judge := func(t *testing.T) (map[string]string, map[string]string) {
		ours := map[string]string{}
		for _, r := range nodecheck.Run("node", nodecheck.Load(root, nodecheck.DefaultPaths())).Results {
			ours[r.ID] = string(r.Status)
		}
		return ours, runKubeBench(t, root, bench, standIn)
	}
	ours, theirs := judge(t)
	both, disagree := compareVerdicts(ours, theirs)
	t.Logf("judged by both: %d items; disagreements: %v; judged by kplane alone: %v; by kube-bench alone: %v",
		len(both), disagree, judgedAlone(ours, theirs), judgedAlone(theirs, ours))
	assert.GreaterOrEqual(t, len(both), 40, "most automated node items are judged by both")
	assert.Empty(t, disagree, "item: [kplane, kube-bench]")

	weaken(t, root)
	ours, theirs = judge(t)
	both, disagree = compareVerdicts(ours, theirs)
	for _, id := range []string{"1.2.15", "4.2.1", "1.1.1", "1.1.15"} {
		assert.Equal(t, "FAIL", ours[id], id)
		assert.Equal(t, "FAIL", theirs[id], id)
	}
	// kube-bench's CIS 1.10 marks 4.2.7 Manual: it passes an unset flag but only warns on a set one.
	assert.Equal(t, "FAIL", ours["4.2.7"])
	assert.Equal(t, "WARN", theirs["4.2.7"])
	assert.Empty(t, disagree, "weakened, item: [kplane, kube-bench]")
	t.Logf("weakened: judged by both: %d items", len(both))
}

// compareVerdicts returns the items both judged PASS or FAIL, and those where they differ.
func compareVerdicts(ours, theirs map[string]string) ([]string, map[string][2]string) {
	var both []string
	disagree := map[string][2]string{}
	for id, o := range ours {
		k, ok := theirs[id]
		if !ok || !slices.Contains([]string{"PASS", "FAIL"}, o) || !slices.Contains([]string{"PASS", "FAIL"}, k) {
			continue
		}
		both = append(both, id)
		if o != k {
			disagree[id] = [2]string{o, k}
		}
	}
	slices.Sort(both)
	return both, disagree
}

// judgedAlone: the items a judged (PASS or FAIL) and b did not.
func judgedAlone(a, b map[string]string) []string {
	var alone []string
	for id, v := range a {
		if (v == "PASS" || v == "FAIL") && b[id] != "PASS" && b[id] != "FAIL" {
			alone = append(alone, id)
		}
	}
	slices.Sort(alone)
	return alone
}

// kubeadmNode lays out a kubeadm control-plane node from a test-bed cluster's folder: its
// manifests with their paths moved to kubeadm's, its PKI in /etc/kubernetes/pki, an etcd data
// folder, the component's kubelet configuration, kubeadm's kubelet drop-in, users root and etcd.
func kubeadmNode(t *testing.T, dir string) string {
	root := t.TempDir()
	move := strings.NewReplacer(filepath.Join(dir, "pki"), "/etc/kubernetes/pki", filepath.Join(dir, "etcd"), "/var/lib/etcd",
		filepath.Join(dir, "scheduler.kubeconfig"), "/etc/kubernetes/scheduler.conf", filepath.Join(dir, "controller-manager.kubeconfig"), "/etc/kubernetes/controller-manager.conf",
		dir, "/etc/kubernetes")
	write := func(path string, body []byte, mode os.FileMode) {
		full := filepath.Join(root, path)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, body, mode))
		require.NoError(t, os.Chmod(full, mode))
	}
	manifests, err := filepath.Glob(filepath.Join(dir, "manifests", "*.yaml"))
	require.NoError(t, err)
	require.Len(t, manifests, 4, "kcp records the flags of kube-apiserver, etcd, kube-controller-manager and kube-scheduler")
	for _, m := range manifests {
		raw, err := os.ReadFile(m)
		require.NoError(t, err)
		write("/etc/kubernetes/manifests/"+filepath.Base(m), []byte(move.Replace(string(raw))), 0o600)
	}
	pki, err := os.ReadDir(filepath.Join(dir, "pki"))
	require.NoError(t, err)
	for _, f := range pki {
		raw, err := os.ReadFile(filepath.Join(dir, "pki", f.Name()))
		require.NoError(t, err)
		write("/etc/kubernetes/pki/"+f.Name(), raw, 0o600)
	}
	for _, kc := range []string{"kubelet.conf", "admin.conf", "scheduler.conf", "controller-manager.conf"} {
		write("/etc/kubernetes/"+kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600)
	}
	write("/var/lib/kubelet/config.yaml", []byte(hardenedcluster.KubeletConfiguration()), 0o600)
	write("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", []byte(`[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`), 0o600)
	write("/var/lib/kubelet/kubeadm-flags.env", []byte("KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n"), 0o600)
	write("/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\netcd:x:998:998::/var/lib/etcd:/usr/sbin/nologin\n"), 0o644)
	write("/etc/group", []byte("root:x:0:\netcd:x:998:\n"), 0o644)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "var/lib/etcd"), 0o700))
	require.NoError(t, os.Chown(filepath.Join(root, "var/lib/etcd"), 998, 998))
	return root
}

// weaken opens the node up where both tools judge automatically: the API server's profiling, the
// kubelet's anonymous requests (a flag in kubeadm's flags file, over the hardened configuration
// file, and a --hostname-override), the API server manifest's and the scheduler's kubeconfig's
// permissions.
func weaken(t *testing.T, root string) {
	api := filepath.Join(root, "etc/kubernetes/manifests/kube-apiserver.yaml")
	raw, err := os.ReadFile(api)
	require.NoError(t, err)
	weak := strings.Replace(string(raw), `"--profiling=false"`, `"--profiling=true"`, 1)
	require.NotEqual(t, string(raw), weak, "the manifest sets --profiling=false")
	require.NoError(t, os.WriteFile(api, []byte(weak), 0o644))
	require.NoError(t, os.Chmod(api, 0o644))
	require.NoError(t, os.Chmod(filepath.Join(root, "etc/kubernetes/scheduler.conf"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "var/lib/kubelet/kubeadm-flags.env"),
		[]byte("KUBELET_KUBEADM_ARGS=\"--anonymous-auth=true --hostname-override=node-a\"\n"), 0o600))
}

// runKubeBench runs kube-bench (CIS 1.10: master, etcd and node targets) in a chroot of root with
// new mount and PID namespaces, where each control-plane component and the kubelet runs as a
// stand-in process with its command line (the manifests' commands; the kubelet's from its
// drop-in and environment file, as systemd would start it). It returns verdicts by item.
func runKubeBench(t *testing.T, root, bench, standIn string) map[string]string {
	bin := filepath.Join(root, "opt/k8s")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	var script strings.Builder
	script.WriteString("set -e\n")
	manifests, err := filepath.Glob(filepath.Join(root, "etc/kubernetes/manifests/*.yaml"))
	require.NoError(t, err)
	commands := [][]string{kubeletCommand(t, root)}
	for _, m := range manifests {
		var pod struct {
			Spec struct {
				Containers []struct{ Command []string } `json:"containers"`
			} `json:"spec"`
		}
		raw, err := os.ReadFile(m)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &pod))
		commands = append(commands, pod.Spec.Containers[0].Command)
	}
	for _, cmd := range commands {
		name := filepath.Base(cmd[0])
		copyExecutable(t, standIn, filepath.Join(bin, name))
		quoted := []string{"/opt/k8s/" + name}
		for _, a := range cmd[1:] {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		script.WriteString(strings.Join(quoted, " ") + " &\n")
	}
	copyExecutable(t, bench, filepath.Join(root, "opt/kube-bench/kube-bench"))
	if _, err := os.Stat(filepath.Join(root, "opt/kube-bench/cfg")); os.IsNotExist(err) {
		require.NoError(t, os.CopyFS(filepath.Join(root, "opt/kube-bench/cfg"), os.DirFS(filepath.Join(filepath.Dir(bench), "..", "cfg"))))
	}
	script.WriteString("sleep 1\n/opt/kube-bench/kube-bench run --config-dir /opt/kube-bench/cfg --benchmark cis-1.10 --targets master,etcd,node --json --noremediations > /report.json\n")
	require.NoError(t, os.WriteFile(filepath.Join(root, "run.sh"), []byte(script.String()), 0o700))
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		if _, err := os.Lstat(filepath.Join(root, l)); os.IsNotExist(err) {
			require.NoError(t, os.Symlink("usr/"+l, filepath.Join(root, l)))
		}
	}
	for _, d := range []string{"usr", "dev", "proc", "tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	outer := fmt.Sprintf("mount --bind /usr %[1]s/usr && mount --bind /dev %[1]s/dev && exec chroot %[1]s /bin/sh /run.sh", root)
	out, err := exec.Command("unshare", "--mount", "--pid", "--fork", "--mount-proc="+filepath.Join(root, "proc"), "sh", "-c", outer).CombinedOutput()
	require.NoError(t, err, "%s", out)
	raw, err := os.ReadFile(filepath.Join(root, "report.json"))
	require.NoError(t, err)
	var report struct {
		Controls []struct {
			Tests []struct {
				Results []struct {
					Number string `json:"test_number"`
					Status string `json:"status"`
				} `json:"results"`
			} `json:"tests"`
		}
	}
	require.NoError(t, json.Unmarshal(raw, &report), "%s", raw)
	verdicts := map[string]string{}
	for _, c := range report.Controls {
		for _, tc := range c.Tests {
			for _, r := range tc.Results {
				verdicts[r.Number] = r.Status
			}
		}
	}
	require.NotEmpty(t, verdicts, "%s", raw)
	return verdicts
}

// kubeletCommand is the kubelet's command line from kubeadm's drop-in and flags file.
func kubeletCommand(t *testing.T, root string) []string {
	env, err := os.ReadFile(filepath.Join(root, "var/lib/kubelet/kubeadm-flags.env"))
	require.NoError(t, err)
	_, extra, _ := strings.Cut(strings.TrimSpace(string(env)), "=")
	return append([]string{"kubelet", "--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml"}, strings.Fields(strings.Trim(extra, `"`))...)
}

func copyExecutable(t *testing.T, from, to string) {
	raw, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(to), 0o755))
	require.NoError(t, os.WriteFile(to, raw, 0o755))
}
