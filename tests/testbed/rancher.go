package testbed

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// RancherStandIn plays, on a management cluster, the parts of Rancher a member's import goes
// through — Rancher itself cannot run here. It does what Rancher 2.15's controllers and its
// import endpoint do (as its source has them): a new provisioning.cattle.io Cluster is linked to a
// Rancher cluster id (status.clusterName) whose namespace gets the ClusterRegistrationToken
// default-token (status.manifestUrl with a {token} placeholder, the token in the Secret
// status.tokenSecretName), and <URL>/v3/import/<token>_<id>.yaml serves that cluster's
// registration manifest (the cattle-cluster-agent, its credentials and cluster-admin binding)
// over TLS from a private CA published in the cacerts setting. Its CRDs are schemaless stand-ins
// for Rancher's.
type RancherStandIn struct {
	URL string
	// Down makes the import endpoint answer 503, as a Rancher being upgraded would.
	Down atomic.Bool
	mu   sync.Mutex
	// tokens are the registration tokens issued, by Rancher cluster id.
	tokens map[string]string
}

var (
	rancherClusters = schema.GroupVersionResource{Group: "provisioning.cattle.io", Version: "v1", Resource: "clusters"}
	rancherTokens   = schema.GroupVersionResource{Group: "management.cattle.io", Version: "v3", Resource: "clusterregistrationtokens"}
	rancherSettings = schema.GroupVersionResource{Group: "management.cattle.io", Version: "v3", Resource: "settings"}
)

func rancherCRD(group, kind, plural, scope, version string, status bool) string {
	sub := ""
	if status {
		sub = "\n    subresources: {status: {}}"
	}
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %[3]s.%[1]s}
spec:
  group: %[1]s
  names: {kind: %[2]s, plural: %[3]s, singular: %[6]s}
  scope: %[4]s
  versions:
  - name: %[5]s
    served: true
    storage: true%[7]s
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
`, group, kind, plural, scope, version, strings.ToLower(kind), sub)
}

// StartRancherStandIn installs the stand-in into c and runs it until the test ends.
func StartRancherStandIn(t testing.TB, c *Cluster) *RancherStandIn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	crds := rancherCRD("provisioning.cattle.io", "Cluster", "clusters", "Namespaced", "v1", true) +
		rancherCRD("management.cattle.io", "ClusterRegistrationToken", "clusterregistrationtokens", "Namespaced", "v3", false) +
		rancherCRD("management.cattle.io", "Setting", "settings", "Cluster", "v3", false)
	if err := c.kubectl(ctx, strings.NewReader(crds), "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if err := c.kubectl(ctx, nil, "wait", "--for=condition=Established", "--timeout=60s", "crd/clusters.provisioning.cattle.io",
		"crd/clusterregistrationtokens.management.cattle.io", "crd/settings.management.cattle.io"); err != nil {
		t.Fatal(err)
	}
	r := &RancherStandIn{tokens: map[string]string{}}
	var ca []byte
	r.URL, ca = serveTLS(t, http.HandlerFunc(r.serveImport))
	dyn, err := c.Dynamic()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	// Rancher's cacerts setting: the CA of its server certificate, for agents and importers.
	if _, err := dyn.Resource(rancherSettings).Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "management.cattle.io/v3", "kind": "Setting",
		"metadata": map[string]any{"name": "cacerts"}, "value": string(ca)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fleet-default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	go func() {
		for ctx.Err() == nil {
			if err := r.reconcile(ctx, dyn, cs); err != nil && ctx.Err() == nil {
				t.Logf("Rancher stand-in: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return r
}

// reconcile links each new provisioning Cluster to a Rancher cluster and issues its token.
func (r *RancherStandIn) reconcile(ctx context.Context, dyn dynamic.Interface, cs kubernetes.Interface) error {
	list, err := dyn.Resource(rancherClusters).Namespace("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, cl := range list.Items {
		if id, _, _ := unstructured.NestedString(cl.Object, "status", "clusterName"); id != "" {
			continue
		}
		id := "c-" + strings.ToLower(randomString(5))
		token := randomString(54)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: id}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := cs.CoreV1().Secrets(id).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "crt-token-default-token"},
			Data: map[string][]byte{"token": []byte(token)}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := dyn.Resource(rancherTokens).Namespace(id).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "management.cattle.io/v3", "kind": "ClusterRegistrationToken",
			"metadata": map[string]any{"name": "default-token", "namespace": id}, "spec": map[string]any{"clusterName": id},
			"status": map[string]any{"manifestUrl": r.URL + "/v3/import/{token}_" + id + ".yaml", "token": "", "tokenSecretName": "crt-token-default-token",
				"command": "kubectl apply -f " + r.URL + "/v3/import/{token}_" + id + ".yaml"}}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		r.mu.Lock()
		r.tokens[id] = token
		r.mu.Unlock()
		if err := unstructured.SetNestedField(cl.Object, id, "status", "clusterName"); err != nil {
			return err
		}
		if _, err := dyn.Resource(rancherClusters).Namespace(cl.GetNamespace()).UpdateStatus(ctx, &cl, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// Token is the registration token issued for the provisioning Cluster name ("" if none).
func (r *RancherStandIn) Token(ctx context.Context, c *Cluster, workspace, name string) string {
	dyn, err := c.Dynamic()
	if err != nil {
		return ""
	}
	cl, err := dyn.Resource(rancherClusters).Namespace(workspace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	id, _, _ := unstructured.NestedString(cl.Object, "status", "clusterName")
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tokens[id]
}

// serveImport is /v3/import/<token>_<id>.yaml: the cluster's registration manifest.
func (r *RancherStandIn) serveImport(w http.ResponseWriter, req *http.Request) {
	if r.Down.Load() {
		http.Error(w, "upgrading", http.StatusServiceUnavailable)
		return
	}
	file, ok := strings.CutPrefix(req.URL.Path, "/v3/import/")
	token, id, ok2 := strings.Cut(strings.TrimSuffix(file, ".yaml"), "_")
	r.mu.Lock()
	valid := ok && ok2 && token != "" && r.tokens[id] == token
	r.mu.Unlock()
	if !valid {
		http.NotFound(w, req)
		return
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	fmt.Fprintf(w, `apiVersion: v1
kind: Namespace
metadata: {name: cattle-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: cattle, namespace: cattle-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cattle-admin, labels: {cattle.io/creator: norman}}
rules:
- {apiGroups: ["*"], resources: ["*"], verbs: ["*"]}
- {nonResourceURLs: ["*"], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: cattle-admin-binding, labels: {cattle.io/creator: norman}}
subjects: [{kind: ServiceAccount, name: cattle, namespace: cattle-system}]
roleRef: {kind: ClusterRole, name: cattle-admin, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: v1
kind: Secret
metadata: {name: cattle-credentials-%[1]s, namespace: cattle-system}
type: Opaque
data: {url: %[2]q, token: %[3]q, namespace: %[4]q}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cattle-cluster-agent, namespace: cattle-system}
spec:
  replicas: 1
  selector: {matchLabels: {app: cattle-cluster-agent}}
  template:
    metadata: {labels: {app: cattle-cluster-agent}}
    spec:
      serviceAccountName: cattle
      containers:
      - name: cluster-register
        image: registry.example.com/rancher/rancher-agent@sha256:%[5]s
        env:
        - {name: CATTLE_SERVER, value: %[6]q}
        - {name: CATTLE_CLUSTER, value: "true"}
        volumeMounts: [{name: cattle-credentials, mountPath: /cattle-credentials, readOnly: true}]
      volumes: [{name: cattle-credentials, secret: {secretName: cattle-credentials-%[1]s, defaultMode: 320}}]
---
apiVersion: v1
kind: Service
metadata: {name: cattle-cluster-agent, namespace: cattle-system}
spec:
  ports: [{port: 80, targetPort: 80, protocol: TCP, name: http}]
  selector: {app: cattle-cluster-agent}
`, fmt.Sprintf("%x", sha256.Sum256([]byte(token)))[:7], b64(r.URL), b64(token), b64(id), strings.Repeat("c", 64), r.URL)
}

func randomString(n int) string {
	const letters = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}
