package rollout

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Rancher's objects a member's import goes through (on the management cluster).
var (
	provisioningClusters = schema.GroupVersionResource{Group: "provisioning.cattle.io", Version: "v1", Resource: "clusters"}
	registrationTokens   = schema.GroupVersionResource{Group: "management.cattle.io", Version: "v3", Resource: "clusterregistrationtokens"}
	rancherSettings      = schema.GroupVersionResource{Group: "management.cattle.io", Version: "v3", Resource: "settings"}
)

// RancherRegistration is the registration manifest Rancher issued for a member it imports (its
// cattle-cluster-agent and credentials, YAML: it holds the registration token), or "" while
// Rancher has not issued it yet: the provisioning Cluster not there or not linked to Rancher's
// cluster yet, or its default-token not ready. It follows Rancher's import: the provisioning
// Cluster's status.clusterName names Rancher's cluster, whose namespace holds the
// ClusterRegistrationToken default-token; its status.manifestUrl is the manifest, with the token
// in place of "{token}" (from the Secret status.tokenSecretName since Rancher 2.15, status.token
// before). The manifest is fetched trusting Rancher's cacerts setting when it has one. Errors
// never carry the token.
func RancherRegistration(ctx context.Context, management Cluster, workspace, name string, timeout time.Duration) (string, error) {
	dyn, err := management.dynamic(timeout)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cluster, err := dyn.Resource(provisioningClusters).Namespace(workspace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cluster %s: Rancher's cluster %s/%s: %s", name, workspace, name, firstLine(err.Error()))
	}
	id, _, _ := unstructured.NestedString(cluster.Object, "status", "clusterName")
	if id == "" {
		return "", nil
	}
	crt, err := dyn.Resource(registrationTokens).Namespace(id).Get(ctx, "default-token", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cluster %s: Rancher's registration token %s/default-token: %s", name, id, firstLine(err.Error()))
	}
	link, _, _ := unstructured.NestedString(crt.Object, "status", "manifestUrl")
	token, _, _ := unstructured.NestedString(crt.Object, "status", "token")
	if secret, _, _ := unstructured.NestedString(crt.Object, "status", "tokenSecretName"); secret != "" {
		cs, _, err := management.Client(timeout)
		if err != nil {
			return "", err
		}
		sec, err := cs.CoreV1().Secrets(id).Get(ctx, secret, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("cluster %s: Rancher's registration token secret %s/%s: %s", name, id, secret, firstLine(err.Error()))
		}
		token = string(sec.Data["token"])
	}
	if link == "" || token == "" {
		return "", nil
	}
	shown := strings.ReplaceAll(link, token, "{token}") // what errors may say
	link = strings.ReplaceAll(link, "{token}", token)
	client, err := rancherClient(ctx, dyn, name, timeout)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return "", fmt.Errorf("cluster %s: Rancher's manifest URL %s is not a URL", name, shown)
	}
	resp, err := client.Do(req)
	if err != nil {
		if uerr := (*url.Error)(nil); errors.As(err, &uerr) { // it names the URL, token and all: say only why
			err = uerr.Err
		}
		return "", fmt.Errorf("cluster %s: fetching Rancher's registration manifest %s: %s", name, shown, strings.ReplaceAll(firstLine(err.Error()), token, "{token}"))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("cluster %s: reading Rancher's registration manifest %s: %v", name, shown, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("cluster %s: Rancher's registration manifest %s: %s", name, shown, resp.Status)
	}
	if !strings.Contains(string(body), "kind:") {
		return "", fmt.Errorf("cluster %s: Rancher's registration manifest %s is not YAML manifests", name, shown)
	}
	return string(body), nil
}

// rancherClient is an HTTP client that trusts Rancher's own CA (its cacerts setting) when it
// has one, for fetching the registration manifest of cluster name.
func rancherClient(ctx context.Context, dyn dynamic.Interface, name string, timeout time.Duration) (*http.Client, error) {
	client := &http.Client{Timeout: timeout}
	setting, err := dyn.Resource(rancherSettings).Get(ctx, "cacerts", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return client, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %s: Rancher's cacerts setting: %s", name, firstLine(err.Error()))
	}
	if ca, _, _ := unstructured.NestedString(setting.Object, "value"); strings.TrimSpace(ca) != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(ca)) {
			return nil, fmt.Errorf("cluster %s: Rancher's cacerts setting holds no PEM certificate", name)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return client, nil
}
