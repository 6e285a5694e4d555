package nodecheck_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
)

// hardenedAPIServer are the flags of a hardened kubeadm API server (as the test bed runs).
var hardenedAPIServer = []string{
	"--anonymous-auth=false", "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
	"--profiling=false", "--audit-log-path=/var/log/kubernetes/audit.log", "--audit-policy-file=/etc/kubernetes/audit-policy.yaml",
	"--audit-log-maxage=30", "--audit-log-maxbackup=10", "--audit-log-maxsize=100",
	"--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt", "--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key",
	"--kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt", "--service-account-lookup=true", "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
	"--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt", "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
	"--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt", "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt", "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
	"--client-ca-file=/etc/kubernetes/pki/ca.crt", "--encryption-provider-config=/etc/kubernetes/encryption.yaml",
	"--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"--service-account-extend-token-expiration=false",
}

func manifest(component string, args []string) string {
	return "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: " + component + "\n    command:\n    - " + component + "\n    - " + strings.Join(args, "\n    - ") + "\n"
}

// fakeNode writes a node's files under a temporary root: kubeadm's layout, the hardened kubelet
// configuration, a control plane with apiArgs; mode is the files' permission bits.
func fakeNode(t *testing.T, kubelet string, apiArgs []string, mode os.FileMode) (string, nodecheck.Paths) {
	root := t.TempDir()
	p := nodecheck.DefaultPaths()
	etcdData := filepath.Join(root, "var/lib/etcd")
	files := map[string]string{
		p.KubeletConfig:              kubelet,
		p.KubeletKubeconfig:          "apiVersion: v1\nkind: Config\n",
		p.KubeletService:             "[Service]\n",
		"/etc/kubernetes/pki/ca.crt": "cert", "/etc/kubernetes/pki/ca.key": "key",
		"/etc/passwd": "root:x:0:0::/root:/bin/sh\netcd:x:0:0::/var/lib/etcd:/sbin/nologin\n",
		filepath.Join(p.Manifests, "kube-apiserver.yaml"): manifest("kube-apiserver", apiArgs),
		filepath.Join(p.Manifests, "etcd.yaml"): manifest("etcd", []string{"--data-dir=/var/lib/etcd", "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
			"--key-file=/etc/kubernetes/pki/etcd/server.key", "--client-cert-auth=true", "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
			"--peer-key-file=/etc/kubernetes/pki/etcd/peer.key", "--peer-client-cert-auth=true", "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt"}),
	}
	for path, content := range files {
		full := filepath.Join(root, path)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		m := mode
		if path == "/etc/passwd" {
			m = 0o644
		}
		require.NoError(t, os.WriteFile(full, []byte(content), m))
		require.NoError(t, os.Chmod(full, m))
	}
	require.NoError(t, os.MkdirAll(etcdData, 0o700))
	return root, p
}

func byID(r nodecheck.Report) map[string]nodecheck.Result {
	m := map[string]nodecheck.Result{}
	for _, res := range r.Results {
		m[res.ID] = res
	}
	return m
}

// TestHardenedNodePasses: a node set up as the hardened cluster prescribes (its
// KubeletConfiguration, a hardened API server and etcd, files 600) passes every check.
func TestHardenedNodePasses(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("ownership checks need files owned by root: run as root")
	}
	root, p := fakeNode(t, hardenedcluster.KubeletConfiguration(), hardenedAPIServer, 0o600)
	r := nodecheck.Run("node-1", nodecheck.Load(root, p))
	for _, res := range r.Results {
		assert.NotEqual(t, nodecheck.Fail, res.Status, "%s %s: %s", res.ID, res.Title, res.Detail)
		assert.NotEqual(t, nodecheck.Warn, res.Status, "%s %s: %s", res.ID, res.Title, res.Detail)
	}
	assert.Greater(t, r.Totals[nodecheck.Pass], 50)
	assert.Equal(t, nodecheck.Skip, byID(r)["1.1.3"].Status, "no controller-manager manifest on this node")
}

// TestWeakNodeFails: each weakening is reported with its CIS id, its KISA item and the fix.
func TestWeakNodeFails(t *testing.T) {
	weakKubelet := strings.NewReplacer("enabled: false", "enabled: true", "readOnlyPort: 0", "readOnlyPort: 10255",
		"protectKernelDefaults: true", "protectKernelDefaults: false").Replace(hardenedcluster.KubeletConfiguration())
	weakAPI := []string{"--anonymous-auth=true", "--authorization-mode=AlwaysAllow", "--token-auth-file=/etc/tokens.csv",
		"--tls-cipher-suites=TLS_RSA_WITH_AES_128_CBC_SHA", "--audit-log-maxage=7", "--client-ca-file=/etc/kubernetes/pki/ca.crt"}
	root, p := fakeNode(t, weakKubelet, weakAPI, 0o644)
	got := byID(nodecheck.Run("node-2", nodecheck.Load(root, p)))
	for id, kisa := range map[string]string{
		"1.1.1": "Master-14", "1.1.20": "Master-15", "1.1.21": "Master-15", "1.2.1": "Master-01", "1.2.2": "Master-02",
		"1.2.6": "Master-04", "1.2.7": "Master-04", "1.2.15": "", "1.2.16": "Master-07", "1.2.17": "Master-07", "1.2.27": "Master-10",
		"1.2.29": "Master-06", "4.1.9": "Worker-05", "4.2.1": "Worker-01", "4.2.4": "Worker-01", "KISA-W04": "Worker-04",
	} {
		res := got[id]
		assert.Equal(t, nodecheck.Fail, res.Status, "%s %s: %s", id, res.Title, res.Detail)
		assert.NotEmpty(t, res.Fix, id)
		if kisa != "" {
			assert.Contains(t, res.KISA, kisa, id)
		}
	}
	assert.Equal(t, "--anonymous-auth=true", got["1.2.1"].Detail)
	assert.Contains(t, got["4.1.9"].Detail, "is 0644")
	assert.Equal(t, nodecheck.Pass, got["2.2"].Status)
}

// TestWorkerNode: a worker has no control plane: those checks are skipped, not failed.
func TestWorkerNode(t *testing.T) {
	root, p := fakeNode(t, hardenedcluster.KubeletConfiguration(), nil, 0o600)
	require.NoError(t, os.RemoveAll(filepath.Join(root, p.Manifests)))
	require.NoError(t, os.RemoveAll(filepath.Join(root, p.PKI)))
	got := byID(nodecheck.Run("worker", nodecheck.Load(root, p)))
	for _, id := range []string{"1.1.1", "1.1.11", "1.1.20", "1.2.1", "2.1", "2.7"} {
		assert.Equal(t, nodecheck.Skip, got[id].Status, id)
	}
	assert.Equal(t, nodecheck.Pass, got["4.2.1"].Status)
}

// The kubelet's flags, from its systemd drop-ins and the environment files they name, override
// its configuration file: a hardened file with weakening flags fails, naming the flag and files.
func TestKubeletFlagsOverrideConfig(t *testing.T) {
	root, p := fakeNode(t, hardenedcluster.KubeletConfiguration(), hardenedAPIServer, 0o600)
	results := func(n *nodecheck.Node) map[string]nodecheck.Result { return byID(nodecheck.Run("node-3", n)) }
	before := results(nodecheck.Load(root, p))
	for _, id := range []string{"4.2.1", "4.2.4", "4.2.7", "4.2.12"} {
		require.Equal(t, nodecheck.Pass, before[id].Status, id)
	}
	write := func(path, body string) {
		full := filepath.Join(root, path)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(body), 0o600))
	}
	// kubeadm's drop-in, as kubeadm writes it.
	write(p.KubeletService, `[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`)
	write("/var/lib/kubelet/kubeadm-flags.env", `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --anonymous-auth=true --read-only-port=10255 --hostname-override=node-a"`+"\n")
	write("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA\n")
	after := results(nodecheck.Load(root, p))
	assert.Equal(t, nodecheck.Fail, after["4.2.1"].Status)
	assert.Contains(t, after["4.2.1"].Detail, "authentication.anonymous.enabled: true (from --anonymous-auth on the kubelet's command line (/etc/systemd/system/kubelet.service.d/10-kubeadm.conf, /var/lib/kubelet/kubeadm-flags.env, /etc/default/kubelet)")
	assert.Equal(t, nodecheck.Fail, after["4.2.4"].Status)
	assert.Contains(t, after["4.2.4"].Detail, "readOnlyPort: 10255 (from --read-only-port")
	assert.Equal(t, nodecheck.Fail, after["4.2.7"].Status)
	assert.Equal(t, "--hostname-override=node-a on the kubelet's command line", after["4.2.7"].Detail)
	assert.Equal(t, nodecheck.Fail, after["4.2.12"].Status)
	assert.Contains(t, after["4.2.12"].Detail, "weak cipher suite TLS_RSA_WITH_AES_128_CBC_SHA (from --tls-cipher-suites")
	assert.Equal(t, nodecheck.Pass, after["4.2.2"].Status, "fields no flag sets keep the file's value")

	// A later drop-in that resets ExecStart and drops the weakening flags wins.
	write("/etc/systemd/system/kubelet.service.d/20-hardened.conf", "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml\n")
	last := results(nodecheck.Load(root, p))
	assert.Equal(t, nodecheck.Pass, last["4.2.1"].Status, last["4.2.1"].Detail)
}

// TestControllerChecks: CIS 1.3 and 1.4 judge the controller manager's and scheduler's flags.
func TestControllerChecks(t *testing.T) {
	root, p := fakeNode(t, hardenedcluster.KubeletConfiguration(), hardenedAPIServer, 0o600)
	kcm := filepath.Join(root, p.Manifests, "kube-controller-manager.yaml")
	require.NoError(t, os.WriteFile(kcm, []byte(manifest("kube-controller-manager", []string{"--root-ca-file=/etc/kubernetes/pki/ca.crt",
		"--feature-gates=RotateKubeletServerCertificate=false", "--service-account-private-key-file=/etc/kubernetes/pki/sa.key"})), 0o600))
	got := byID(nodecheck.Run("cp", nodecheck.Load(root, p)))
	for id, detail := range map[string]string{"1.3.1": "--terminated-pod-gc-threshold is not set", "1.3.2": "--profiling=true",
		"1.3.3": "--use-service-account-credentials=false", "1.3.6": "includes RotateKubeletServerCertificate=false", "1.3.7": "--bind-address=0.0.0.0"} {
		assert.Equal(t, nodecheck.Fail, got[id].Status, id)
		assert.Contains(t, got[id].Detail, detail, id)
	}
	assert.Equal(t, nodecheck.Pass, got["1.3.4"].Status)
	assert.Equal(t, nodecheck.Pass, got["1.3.5"].Status)
	assert.Contains(t, got["1.3.7"].KISA, "Master-03")
	assert.Equal(t, nodecheck.Skip, got["1.4.1"].Status, "no scheduler manifest on this node")
}

// TestKubeconfigChecks: CIS 1.1.13-1.1.18 judge the administrator's kubeconfigs (admin.conf,
// and super-admin.conf where kubeadm made one) and the files the scheduler's and controller
// manager's --kubeconfig name; one loose file fails the item, naming it; a file not on the
// node is skipped.
func TestKubeconfigChecks(t *testing.T) {
	root, p := fakeNode(t, hardenedcluster.KubeletConfiguration(), hardenedAPIServer, 0o600)
	write := func(path string, mode os.FileMode) {
		full := filepath.Join(root, path)
		require.NoError(t, os.WriteFile(full, []byte("apiVersion: v1\nkind: Config\n"), mode))
		require.NoError(t, os.Chmod(full, mode))
	}
	write("/etc/kubernetes/admin.conf", 0o600)
	write("/etc/kubernetes/super-admin.conf", 0o640)
	write("/etc/kubernetes/sched.conf", 0o600)
	require.NoError(t, os.WriteFile(filepath.Join(root, p.Manifests, "kube-scheduler.yaml"),
		[]byte(manifest("kube-scheduler", []string{"--kubeconfig=/etc/kubernetes/sched.conf", "--profiling=false"})), 0o600))
	got := byID(nodecheck.Run("cp", nodecheck.Load(root, p)))
	assert.Equal(t, nodecheck.Fail, got["1.1.13"].Status)
	assert.Equal(t, "/etc/kubernetes/admin.conf is 0600; /etc/kubernetes/super-admin.conf is 0640", got["1.1.13"].Detail)
	assert.Equal(t, "chmod 600 the kubeconfig", got["1.1.13"].Fix)
	assert.Contains(t, got["1.1.13"].KISA, "Master-14")
	assert.Equal(t, nodecheck.Pass, got["1.1.15"].Status, got["1.1.15"].Detail)
	assert.Equal(t, "/etc/kubernetes/sched.conf is 0600", got["1.1.15"].Detail, "the file the scheduler's flag names")
	assert.Equal(t, nodecheck.Skip, got["1.1.17"].Status, "no controller manager on this node")
	require.NoError(t, os.Remove(filepath.Join(root, "/etc/kubernetes/super-admin.conf")))
	assert.Equal(t, nodecheck.Pass, byID(nodecheck.Run("cp", nodecheck.Load(root, p)))["1.1.13"].Status, "super-admin.conf is optional")
	if os.Getuid() == 0 {
		assert.Equal(t, nodecheck.Pass, got["1.1.14"].Status)
		require.NoError(t, os.Chown(filepath.Join(root, "/etc/kubernetes/sched.conf"), 1000, 1000))
		assert.Equal(t, nodecheck.Fail, byID(nodecheck.Run("cp", nodecheck.Load(root, p)))["1.1.16"].Status)
	}
}
