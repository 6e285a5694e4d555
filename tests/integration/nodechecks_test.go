package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8smeta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
	"github.com/kplane/kplane/components/hardenedcluster/rules"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/policies/report"
	"github.com/kplane/kplane/tests/testbed"
)

// TestNodeChecks: the node check for real. The component schedules it per node pool; a run of
// the CronJob is admitted by the real API server (privileged-but-exempt namespace) and placed on
// the pool's node. The kplane-nodecheck binary then checks the test bed's own control plane (the
// flags kcp records as kubeadm manifests, its PKI and etcd data) and a kubelet configured with
// the component's KubeletConfig, and files its report as a ConfigMap with the check's own
// ServiceAccount token, which may write nothing else.
func TestNodeChecks(t *testing.T) {
	integration(t)
	c := testbed.StartN(t, 1, testbed.Options{Nodes: 1})[0]
	ctx := context.Background()
	s := hardenedStack(t, c, "nodechecks", &hardenedcluster.Args{
		PodSecurityVersion: "v1.37",
		NodeChecks: hardenedcluster.NodeCheckArgs{
			Image: "registry.example.com/kplane-nodecheck" + rules.Digest,
			Pools: []hardenedcluster.NodePool{{Name: "general", Nodes: 1}},
		},
	}, nil)
	_, err := s.Up(ctx)
	require.NoError(t, err)
	cs, err := c.Clientset()
	require.NoError(t, err)
	ns := hardenedcluster.NodeCheckNamespace

	t.Run("scheduled run is admitted", func(t *testing.T) {
		cron, err := cs.BatchV1().CronJobs(ns).Get(ctx, "node-check-general", k8smeta.GetOptions{})
		require.NoError(t, err)
		job := &batchv1.Job{ObjectMeta: k8smeta.ObjectMeta{Name: "node-check-now"}, Spec: cron.Spec.JobTemplate.Spec}
		_, err = cs.BatchV1().Jobs(ns).Create(ctx, job, k8smeta.CreateOptions{})
		require.NoError(t, err, "a run of the CronJob (kubectl create job --from) passes admission")
		require.Eventually(t, func() bool {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, k8smeta.ListOptions{LabelSelector: "job-name=node-check-now"})
			return err == nil && len(pods.Items) == 1 && pods.Items[0].Spec.NodeName != ""
		}, time.Minute, 200*time.Millisecond, "the check's pod is created and placed on the pool's node")
	})

	// The check's own identity: a token of its ServiceAccount.
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "kplane-node-check", &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{}}, k8smeta.CreateOptions{})
	require.NoError(t, err)
	saConfig := filepath.Join(t.TempDir(), "kubeconfig")
	raw, err := clientcmd.LoadFromFile(c.Kubeconfig)
	require.NoError(t, err)
	for _, u := range raw.AuthInfos {
		u.ClientCertificateData, u.ClientKeyData, u.Token = nil, nil, tok.Status.Token
	}
	require.NoError(t, clientcmd.WriteToFile(*raw, saConfig))

	// A node whose kubelet runs the component's configuration, files 600.
	node := t.TempDir()
	kubelet := strings.ReplaceAll(hardenedcluster.KubeletConfiguration(), "/etc/kubernetes/pki/ca.crt", filepath.Join(c.Dir, "pki", "ca.crt"))
	for name, content := range map[string]string{"config.yaml": kubelet, "kubelet.conf": "apiVersion: v1\nkind: Config\n", "10-kubeadm.conf": "[Service]\n"} {
		require.NoError(t, os.WriteFile(filepath.Join(node, name), []byte(content), 0o600))
	}
	bin := buildCommand(t, "github.com/kplane/kplane/cmd/kplane-nodecheck")
	check := func(t *testing.T) nodecheck.Report {
		cmd := exec.Command(bin, "--node=kwok-node-0", "--report="+ns, "--kubeconfig="+saConfig,
			"--kubelet-config="+filepath.Join(node, "config.yaml"), "--kubelet-kubeconfig="+filepath.Join(node, "kubelet.conf"),
			"--kubelet-service="+filepath.Join(node, "10-kubeadm.conf"), "--manifests="+filepath.Join(c.Dir, "manifests"), "--pki="+filepath.Join(c.Dir, "pki"))
		out, err := cmd.Output()
		require.NoError(t, err)
		var r nodecheck.Report
		require.NoError(t, json.Unmarshal(out, &r))
		return r
	}

	r := check(t)
	failed := map[string]string{}
	for _, res := range r.Results {
		if res.Status == nodecheck.Fail || res.Status == nodecheck.Warn {
			failed[res.ID] = res.Detail
		}
	}
	// The one finding on the test bed: kcp embeds etcd in its own process, run as root.
	assert.Equal(t, map[string]string{"1.1.12": `no "etcd" user on the node: etcd runs as root`}, failed)
	assert.Greater(t, r.Totals[nodecheck.Pass], 50, "API server, etcd, PKI and kubelet checks pass")

	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "node-check-kwok-node-0", k8smeta.GetOptions{})
	require.NoError(t, err, "the report is filed for auditors")
	assert.Contains(t, cm.Data["report.json"], `"id": "1.2.1"`)
	assert.Contains(t, cm.Annotations[wellknown.TotalsAnnotation], "FAIL=1")

	// The compliance report reads it: the test bed's one finding shows under CIS 1.1.12 and KISA Master-16.
	nodes, err := report.ReadNodeReports(ctx, cs)
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	rep, err := report.Build("testbed", "en", nil, nil, nil, nodes, time.Now())
	require.NoError(t, err)
	assert.Equal(t, 1, rep.NodeFailures)
	assert.Contains(t, rep.Markdown(), "`node check 1.1.12` | `kwok-node-0`")

	// A later run updates the report; a weakened kubelet shows up in it.
	require.NoError(t, os.Chmod(filepath.Join(node, "config.yaml"), 0o644))
	r = check(t)
	cm, err = cs.CoreV1().ConfigMaps(ns).Get(ctx, "node-check-kwok-node-0", k8smeta.GetOptions{})
	require.NoError(t, err)
	assert.Contains(t, cm.Annotations[wellknown.TotalsAnnotation], "FAIL=2")
	assert.Contains(t, cm.Data["report.json"], "config.yaml is 0644")

	// The check's identity can write its reports and nothing else.
	sa, err := clientcmd.BuildConfigFromFlags("", saConfig)
	require.NoError(t, err)
	saClient, err := kubernetes.NewForConfig(sa)
	require.NoError(t, err)
	_, err = saClient.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: k8smeta.ObjectMeta{Name: "x"}}, k8smeta.CreateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "outside its namespace: %v", err)
	_, err = saClient.CoreV1().Secrets(ns).List(ctx, k8smeta.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "no secrets: %v", err)

	_, err = s.Destroy(ctx)
	require.NoError(t, err)
	dc, err := c.Dynamic()
	require.NoError(t, err)
	gone(t, dc, gvrNamespace, "", ns)
}
