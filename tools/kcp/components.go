package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/server/flagz"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	cliflag "k8s.io/component-base/cli/flag"
	basecompatibility "k8s.io/component-base/compatibility"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/version"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

func kubeVersion() string { return version.Get().GitVersion }

// startEtcd runs a single-member etcd with mutual TLS on client and peer ports (CIS 2.1-2.6,
// KISA Master-11): no auto-TLS, client certificates required, its own CA. Its client port is
// on loopback and on extraIPs (where real nodes reach it, as a control-plane node's pods do).
func startEtcd(c config, dir string, p pki, extraIPs ...net.IP) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = c.name
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = c.unsafeNoFsync
	client := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", c.etcdPort)}
	peer := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", c.etcdPort+1)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	for _, ip := range extraIPs {
		cfg.ListenClientUrls = append(cfg.ListenClientUrls, url.URL{Scheme: "https", Host: net.JoinHostPort(ip.String(), strconv.Itoa(c.etcdPort))})
	}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peer.String())
	cfg.ListenMetricsUrls = nil
	tlsInfo := func() {
		cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = p.path("etcd-server.crt"), p.path("etcd-server.key")
		cfg.ClientTLSInfo.TrustedCAFile, cfg.ClientTLSInfo.ClientCertAuth = p.path("etcd-ca.crt"), true
		cfg.PeerTLSInfo = cfg.ClientTLSInfo
	}
	tlsInfo()
	if err := writeManifest(dir, "etcd", []string{
		"--data-dir=" + cfg.Dir,
		"--cert-file=" + cfg.ClientTLSInfo.CertFile, "--key-file=" + cfg.ClientTLSInfo.KeyFile, // CIS 2.1
		"--client-cert-auth=true", "--auto-tls=false", // CIS 2.2, 2.3
		"--peer-cert-file=" + cfg.PeerTLSInfo.CertFile, "--peer-key-file=" + cfg.PeerTLSInfo.KeyFile, // CIS 2.4
		"--peer-client-cert-auth=true", "--peer-auto-tls=false", // CIS 2.5, 2.6
		"--trusted-ca-file=" + cfg.ClientTLSInfo.TrustedCAFile, "--peer-trusted-ca-file=" + cfg.PeerTLSInfo.TrustedCAFile, // CIS 2.7
	}); err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("not ready after 60s")
	}
}

// apiserverArgs are the hardened kube-apiserver flags; each names the control it satisfies.
func apiserverArgs(c config, dir string, p pki) ([]string, error) {
	enc, err := encryptionConfig(dir)
	if err != nil {
		return nil, err
	}
	audit, err := filepath.Abs(c.auditPolicy)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.port),
		fmt.Sprintf("--etcd-servers=https://127.0.0.1:%d", c.etcdPort),
		"--etcd-cafile=" + p.path("etcd-ca.crt"), // CIS 1.2.23/1.2.26, KISA Master-11
		"--etcd-certfile=" + p.path("apiserver-etcd-client.crt"),
		"--etcd-keyfile=" + p.path("apiserver-etcd-client.key"),
		"--tls-cert-file=" + p.path("apiserver.crt"), // CIS 1.2.24, KISA Master-06
		"--tls-private-key-file=" + p.path("apiserver.key"),
		"--client-ca-file=" + p.path("ca.crt"), // CIS 1.2.25
		"--tls-min-version=VersionTLS12",
		"--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", // CIS 1.2.29
		"--kubelet-client-certificate=" + p.path("apiserver-kubelet-client.crt"), // CIS 1.2.4
		"--kubelet-client-key=" + p.path("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority=" + p.path("ca.crt"), // CIS 1.2.5
		"--anonymous-auth=false",                                       // CIS 1.2.1, KISA Master-01
		"--authorization-mode=Node,RBAC",                               // CIS 1.2.6-1.2.8, KISA Master-04
		"--enable-admission-plugins=NodeRestriction",                   // CIS 1.2.14 (NamespaceLifecycle, ServiceAccount are on by default)
		"--profiling=false",                                            // CIS 1.2.15
		"--audit-log-path=" + filepath.Join(dir, "audit", "audit.log"), // CIS 1.2.16-1.2.19, KISA Master-07
		"--audit-policy-file=" + audit,
		"--audit-log-maxage=30", "--audit-log-maxbackup=10", "--audit-log-maxsize=100",
		"--service-account-lookup=true",                  // CIS 1.2.21, KISA Master-01
		"--service-account-key-file=" + p.path("sa.pub"), // CIS 1.2.22
		"--service-account-signing-key-file=" + p.path("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-extend-token-expiration=false",
		"--encryption-provider-config=" + enc, // CIS 1.2.27/1.2.28, KISA Master-10
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none", // loopback-only: no pod network would reach an advertised endpoint
		"--allow-privileged=true",         // like any conformant cluster: admission policy, not the apiserver, decides
		"--request-timeout=60s",
	}
	if c.authnConfig != "" {
		abs, err := filepath.Abs(c.authnConfig)
		if err != nil {
			return nil, err
		}
		args = append(args, "--authentication-config="+abs)
	}
	return append(args, c.apiserverArgs...), nil
}

// parseFlags parses one component's flags into its own flag set, so components never share
// process-wide flag state.
func parseFlags(component string, sets cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(component, pflag.ContinueOnError)
	for _, name := range sets.Order {
		fs.AddFlagSet(sets.FlagSets[name])
	}
	return fs.Parse(args)
}

func runAPIServer(ctx context.Context, args []string) error {
	s := apiserveroptions.NewServerRunOptions()
	sets := s.Flags()
	s.Flagz = flagz.NamedFlagSetsReader{FlagSets: sets}
	if err := parseFlags("kube-apiserver", sets, args); err != nil {
		return err
	}
	reg := s.GenericServerRunOptions.ComponentGlobalsRegistry
	if err := reg.Set(); err != nil {
		return err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	if err := logsapi.ValidateAndApply(s.Logs, reg.FeatureGateFor(basecompatibility.DefaultKubeComponent)); err != nil {
		return err
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("%v", errs)
	}
	return apiserverapp.Run(ctx, completed)
}

// controllerManagerArgs: CIS 1.3.1-1.3.7, KISA Master-03/08/09 (no serving port at all).
func controllerManagerArgs(dir string, p pki) []string {
	kc := filepath.Join(dir, "controller-manager.kubeconfig")
	return []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--secure-port=0", "--bind-address=127.0.0.1",
		"--leader-elect=false",
		"--profiling=false",
		"--terminated-pod-gc-threshold=100",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + p.path("sa.key"),
		"--root-ca-file=" + p.path("ca.crt"),
		"--cluster-signing-cert-file=" + p.path("ca.crt"),
		"--cluster-signing-key-file=" + p.path("ca.key"),
	}
}

func runControllerManager(ctx context.Context, args []string) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	known, disabled, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	sets := s.Flags(known, disabled, aliases)
	s.ParsedFlags = &sets
	if err := parseFlags("kube-controller-manager", sets, args); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cfg, err := s.Config(ctx, known, disabled, aliases)
	if err != nil {
		return err
	}
	return kcmapp.Run(ctx, cfg.Complete())
}

func schedulerArgs(dir string) []string {
	kc := filepath.Join(dir, "scheduler.kubeconfig")
	return []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--secure-port=0", "--bind-address=127.0.0.1", // CIS 1.4.2, KISA Master-03
		"--leader-elect=false",
		"--profiling=false", // CIS 1.4.1
	}
}

func runScheduler(ctx context.Context, args []string) error {
	opts := scheduleroptions.NewOptions()
	if err := parseFlags("kube-scheduler", *opts.Flags, args); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	if opts.InformerName == nil {
		name, err := cache.NewInformerName("kube-scheduler")
		if err != nil {
			return err
		}
		opts.InformerName = name
	}
	cc, sched, err := schedulerapp.Setup(ctx, opts)
	if err != nil {
		return err
	}
	return schedulerapp.Run(ctx, cc, sched)
}

// kwokNodeAnnotation marks the nodes KWOK fakes; KWOK is told to manage only these.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

func clientset(kubeconfigPath string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// registerNodes creates the fake nodes (idempotent across restarts).
func registerNodes(ctx context.Context, kubeconfigPath string, n int) error {
	cs, err := clientset(kubeconfigPath)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"type": "kwok", "topology.kubernetes.io/zone": fmt.Sprintf("zone-%c", 'a'+i%3),
				},
			},
			Status: corev1.NodeStatus{
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("64Gi"),
					corev1.ResourcePods: resource.MustParse("110"),
				},
			},
		}
		node.Status.Allocatable = node.Status.Capacity
		node.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: kubeVersion(), OperatingSystem: "linux", Architecture: "amd64"}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// waitNodesReady returns once n nodes of selector report Ready (KWOK's first heartbeat, or a
// real kubelet's with its network), so
// "ready" means workloads can be scheduled.
func waitNodesReady(ctx context.Context, kubeconfigPath, selector string, n int, timeout time.Duration) error {
	cs, err := clientset(kubeconfigPath)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: selector})
		ready := 0
		if err == nil {
			for _, node := range nodes.Items {
				for _, c := range node.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		if ready >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("nodes (%s) not Ready after %s", selector, timeout)
}

// runKWOK supervises the KWOK controller as a child process; it stops with the control plane.
// Its stages (how fake nodes and pods progress) are read from kwok-stages.yaml beside the binary.
func runKWOK(ctx context.Context, bin, dir string) error {
	logf, err := os.OpenFile(filepath.Join(dir, "kwok.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	stages := filepath.Join(filepath.Dir(bin), "kwok-stages.yaml")
	if !exists(stages) {
		return fmt.Errorf("%s missing: kwok needs its stage configuration beside it (tools/build.sh kwok writes it)", stages)
	}
	cmd := exec.CommandContext(ctx, bin,
		"--config="+stages,
		"--kubeconfig="+filepath.Join(dir, "kwok.kubeconfig"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		"--node-lease-duration-seconds=40",
		"--server-address=",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlive the control plane
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%v (see %s)", err, strings.TrimSpace(filepath.Join(dir, "kwok.log")))
}
