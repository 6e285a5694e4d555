// Command kplane-nodecheck checks the node it runs on against CIS Kubernetes Benchmark 1.12 and
// the KISA cloud guide (see package nodecheck), prints the report as JSON and, with --report,
// stores it as the ConfigMap <namespace>/node-check-<node> for auditors. The hardened cluster's
// node-check CronJobs run it with the host's filesystem mounted read-only at --root.
//
//	kplane-nodecheck --root /host --node "$NODE_NAME" --report kplane-node-checks
package main

import (
	// Root certificates compiled in: the image holds this binary alone (internal/images).
	_ "golang.org/x/crypto/x509roots/fallback"

	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/cli"
)

const usage = "usage: kplane-nodecheck --node NAME [--root /host] [--report NAMESPACE] [--fail] [flags] (-h for the flags)"

func main() {
	code := cli.Run("kplane-nodecheck", usage, os.Args[1:], os.Stdout, os.Stderr, func([]string) error { return run() })
	if code == 1 { // exit 1 is a failed check (--fail); an error is 2
		code = 2
	}
	os.Exit(code)
}

func run() error {
	p := nodecheck.DefaultPaths()
	root := flag.String("root", "/", "where the host's filesystem is mounted")
	node := flag.String("node", os.Getenv("NODE_NAME"), "the node's name (default $NODE_NAME)")
	report := flag.String("report", "", "namespace to store the report in as ConfigMap node-check-<node> (in-cluster credentials, or --kubeconfig)")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig for --report outside a cluster")
	failOn := flag.Bool("fail", false, "exit 1 when a check fails (the Job then shows as failed)")
	flag.StringVar(&p.KubeletConfig, "kubelet-config", p.KubeletConfig, "the kubelet's configuration file")
	flag.StringVar(&p.KubeletKubeconfig, "kubelet-kubeconfig", p.KubeletKubeconfig, "the kubelet's kubeconfig")
	flag.StringVar(&p.KubeletService, "kubelet-service", p.KubeletService, "the kubelet's systemd unit drop-in")
	flag.StringVar(&p.Manifests, "manifests", p.Manifests, "static pod manifests of the control plane")
	flag.StringVar(&p.PKI, "pki", p.PKI, "control-plane PKI directory")
	flag.Parse()
	if *node == "" {
		return fmt.Errorf("--node: required (or set NODE_NAME from the downward API)")
	}
	r := nodecheck.Run(*node, nodecheck.Load(*root, p))
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	if *report != "" {
		if err := store(*kubeconfig, *report, r, out); err != nil {
			return fmt.Errorf("--report %s: %w", *report, err)
		}
	}
	if *failOn && r.Totals[nodecheck.Fail] > 0 {
		os.Exit(1)
	}
	return nil
}

// store writes the report as a ConfigMap (create, or update the previous run's).
func store(kubeconfig, namespace string, r nodecheck.Report, report []byte) error {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "node-check-" + r.Node, Namespace: namespace, Labels: map[string]string{
			wellknown.ManagedByLabel: wellknown.ManagedBy, wellknown.NodeCheckLabel: wellknown.NodeCheckReport,
		}, Annotations: map[string]string{
			wellknown.CheckedAtAnnotation: time.Now().UTC().Format(time.RFC3339),
			wellknown.TotalsAnnotation:    fmt.Sprintf("PASS=%d FAIL=%d WARN=%d SKIP=%d", r.Totals[nodecheck.Pass], r.Totals[nodecheck.Fail], r.Totals[nodecheck.Warn], r.Totals[nodecheck.Skip]),
		}},
		Data: map[string]string{"report.json": string(report)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cms := cs.CoreV1().ConfigMaps(namespace)
	if _, err = cms.Create(ctx, cm, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	return err
}
