package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/internal/automation"
	"github.com/kplane/kplane/tests/testbed"
)

var (
	gvrNamespace  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrSA         = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	gvrPod        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	gvrRole       = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}
	gvrRoleBind   = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}
	gvrClusterRB  = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}
	gvrCRD        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// integration marks an integration test, skipped by `go test -short`, that runs beside the
// others: each owns its clusters, services, ports and state, and spends much of its time waiting
// on them (an API server, a controller, a sync), which the others' work overlaps. `make test`
// sets how many run at once (TEST_PARALLEL).
func integration(t *testing.T) {
	t.Helper()
	integrationAlone(t)
	t.Parallel()
}

// integrationAlone marks an integration test that runs alone, before the others start: it sets
// the process's environment (t.Setenv), which a test running beside others may not, or it needs
// the machine to itself (real nodes).
func integrationAlone(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the tool cache and local clusters (run `make test`)")
	}
}

// openStack opens a stack on a per-test local backend, logging the engine's output to a file
// that is printed when the test fails.
func openStack(t *testing.T, stack string, program pulumi.RunFunc, cfg auto.ConfigMap, stateDir string) *automation.Stack {
	t.Helper()
	logPath := filepath.Join(stateDir, stack+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() {
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("pulumi output of %s:\n%s", stack, b)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := automation.Open(ctx, automation.Options{
		Project: "kplane-it", Stack: stack, Program: program, Config: cfg, StateDir: stateDir, Output: logf,
	})
	require.NoError(t, err)
	return s
}

func get(t *testing.T, dc dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	var ri dynamic.ResourceInterface = dc.Resource(gvr)
	if ns != "" {
		ri = dc.Resource(gvr).Namespace(ns)
	}
	obj, err := ri.Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err, "%s %s/%s must exist", gvr.Resource, ns, name)
	return obj
}

func gone(t *testing.T, dc dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) {
	t.Helper()
	var ri dynamic.ResourceInterface = dc.Resource(gvr)
	if ns != "" {
		ri = dc.Resource(gvr).Namespace(ns)
	}
	// Namespaces finish terminating asynchronously; give them a bounded moment.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := ri.Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s/%s still exists after destroy (err=%v)", gvr.Resource, ns, name, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// hardenedStack opens a stack (on its own temporary backend) whose program installs a
// HardenedCluster with args on cluster c, after whatever setup creates (it may be nil), and
// exports the component's outputs.
func hardenedStack(t *testing.T, c *testbed.Cluster, stack string, args *hardenedcluster.Args, setup func(*pulumi.Context, pulumi.ProviderResource) ([]pulumi.Resource, error)) *automation.Stack {
	t.Helper()
	program := func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{Kubeconfig: pulumi.String(c.Kubeconfig)})
		if err != nil {
			return err
		}
		opts := []pulumi.ResourceOption{pulumi.Providers(k8s)}
		if setup != nil {
			deps, err := setup(ctx, k8s)
			if err != nil {
				return err
			}
			opts = append(opts, pulumi.DependsOn(deps))
		}
		hc, err := hardenedcluster.NewHardenedCluster(ctx, stack, args, opts...)
		if err != nil {
			return err
		}
		ctx.Export("namespaces", hc.Namespaces)
		ctx.Export("admissionPolicies", hc.AdmissionPolicies)
		ctx.Export("allowedCidrs", hc.AllowedCIDRs)
		ctx.Export("clientCaBundle", hc.ClientCABundle)
		ctx.Export("vaultPolicies", hc.VaultPolicies)
		return nil
	}
	return openStack(t, stack, program, nil, t.TempDir())
}

// noKplaneObjects asserts that nothing labelled as kplane's is left of the kinds kplane creates.
func noKplaneObjects(t *testing.T, dc dynamic.Interface) {
	t.Helper()
	for _, gvr := range []schema.GroupVersionResource{
		gvrNamespace, gvrClusterRB,
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"},
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"},
		gvrRole, gvrRoleBind, gvrSA,
	} {
		list, err := dc.Resource(gvr).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kplane"})
		require.NoError(t, err)
		var left []string
		for _, o := range list.Items {
			if o.GetDeletionTimestamp() == nil {
				left = append(left, o.GetNamespace()+"/"+o.GetName())
			}
		}
		assert.Empty(t, left, "%s left behind by destroy", gvr.Resource)
	}
}

func str(obj *unstructured.Unstructured, fields ...string) string {
	v, _, _ := unstructured.NestedString(obj.Object, fields...)
	return v
}

func num(obj *unstructured.Unstructured, fields ...string) int64 {
	v, _, _ := unstructured.NestedInt64(obj.Object, fields...)
	return v
}

// pinned reads a version from tools/versions.sh.
func pinned(t *testing.T, key string) string {
	t.Helper()
	v, err := testbed.PinnedVersion(key)
	require.NoError(t, err)
	return v
}

// upstreamCRD installs the CRDs of a file shipped in a Go module (one or many documents) and
// waits until they are Established. A conversion webhook is replaced by strategy None: its server
// (the upstream controller) cannot run here; the schemas, which are what is being tested, stay
// exactly upstream's.
// fixes, when given, correct a known defect of the file before it is installed (said where used).
func upstreamCRD(t *testing.T, c *testbed.Cluster, module, path string, fixes ...func(*unstructured.Unstructured)) {
	raw, err := os.ReadFile(filepath.Join(moduleDir(t, module), path))
	require.NoError(t, err)
	dc, err := c.Dynamic()
	require.NoError(t, err)
	for _, doc := range strings.Split("\n"+string(raw), "\n---") {
		js, err := yaml.YAMLToJSON([]byte(doc))
		require.NoError(t, err)
		obj := &unstructured.Unstructured{}
		if string(js) == "null" || obj.UnmarshalJSON(js) != nil || obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		for _, fix := range fixes {
			fix(obj)
		}
		if strategy, _, _ := unstructured.NestedString(obj.Object, "spec", "conversion", "strategy"); strategy == "Webhook" {
			require.NoError(t, unstructured.SetNestedMap(obj.Object, map[string]any{"strategy": "None"}, "spec", "conversion"))
		}
		_, err = dc.Resource(gvrCRD).Create(context.Background(), obj, metav1.CreateOptions{})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return established(get(t, dc, gvrCRD, "", obj.GetName())) }, 30*time.Second, 100*time.Millisecond)
	}
}

// moduleDir is the directory of module@version in the Go module cache (downloaded if missing):
// upstream releases' CRDs and charts come from there, offline.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	dir, err := testbed.ModuleDir(module)
	require.NoError(t, err)
	return dir
}

// serviceAccountKubeconfig is a kubeconfig for the cluster that authenticates as a
// ServiceAccount (a token from the TokenRequest API): what its pods would be allowed to do.
func serviceAccountKubeconfig(t *testing.T, c *testbed.Cluster, namespace, account string) string {
	t.Helper()
	cs, err := c.Clientset()
	require.NoError(t, err)
	tok, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), account, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	require.NoError(t, err)
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig)
	require.NoError(t, err)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa"}
	cfg.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), account+".kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path
}

// kubeconfigCredentials are the client keys, tokens and passwords of a kubeconfig, by name.
func kubeconfigCredentials(t *testing.T, path string) map[string][]byte {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(path)
	require.NoError(t, err)
	out := map[string][]byte{}
	for name, a := range cfg.AuthInfos {
		for what, v := range map[string][]byte{"client key": a.ClientKeyData, "token": []byte(a.Token), "password": []byte(a.Password)} {
			if len(v) > 0 {
				out[path+" "+name+" "+what] = v
			}
		}
	}
	require.NotEmpty(t, out, "%s has credentials", path)
	return out
}

// noCredentialsInState: no file of the local state backend under dir (checkpoints, history and
// backups, gzipped or not) holds one of the credentials in clear: as it is, base64-encoded, or
// (for PEM) any line of its body.
func noCredentialsInState(t *testing.T, dir string, creds map[string][]byte) {
	t.Helper()
	files := 0
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				return err
			}
			if raw, err = io.ReadAll(zr); err != nil {
				return err
			}
		}
		files++
		for name, secret := range creds {
			needles := []string{string(secret), base64.StdEncoding.EncodeToString(secret)}
			for _, line := range strings.Split(string(secret), "\n") {
				if len(line) >= 32 && !strings.HasPrefix(line, "-----") {
					needles = append(needles, line)
				}
			}
			for _, n := range needles {
				if len(n) >= 16 && bytes.Contains(raw, []byte(n)) {
					t.Errorf("%s holds %s in clear", path, name)
					break
				}
			}
		}
		return nil
	}))
	assert.Positive(t, files, "state files under %s", dir)
}
