// Command kcp runs one local Kubernetes control plane in one process: embedded etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, on loopback only (all addresses
// with real nodes), with its own PKI and the CIS/KISA-hardened flags kplane expects of a
// production control plane. With --kwok it also supervises a KWOK controller that fakes --nodes
// nodes, so workloads become Ready without a kubelet or container images; with --real-nodes it
// starts nodes that run real pods (node.go). It is kplane's test bed; it is not a production
// distribution.
//
//	kcp --dir .state/clusters/dev --port 6443 --nodes 2 --kwok /path/to/kwok
//	kcp --dir .state/clusters/pods --port 6443 --real-nodes 2 --node-bin DIR --sandbox-image REF --cluster-dns IP
//
// The admin kubeconfig is written to <dir>/kubeconfig. SIGINT/SIGTERM stop everything cleanly;
// starting again on the same --dir keeps all data.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type config struct {
	dir, name, kwok, authnConfig, auditPolicy string
	nodeBin, sandboxImage, clusterDNS         string
	port, etcdPort, nodes, realNodes          int
	unsafeNoFsync, cleanNodes                 bool
	apiserverArgs                             stringList
}

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", "", "data directory (PKI, etcd data, audit log, kubeconfig); required")
	flag.StringVar(&c.name, "name", "", "cluster name (default: the directory's base name)")
	flag.IntVar(&c.port, "port", 6443, "kube-apiserver secure port on 127.0.0.1")
	flag.IntVar(&c.etcdPort, "etcd-port", 0, "etcd client port on 127.0.0.1; the peer port is the next one (default: --port + 10000)")
	flag.IntVar(&c.nodes, "nodes", 0, "number of KWOK nodes to register (needs --kwok)")
	flag.StringVar(&c.kwok, "kwok", "", "path of the kwok binary to supervise")
	flag.IntVar(&c.realNodes, "real-nodes", 0, "number of real nodes (containerd, runc, CNI, kubelet, kube-proxy in network namespaces of their own; needs root and --node-bin)")
	flag.StringVar(&c.nodeBin, "node-bin", "", "folder of the real nodes' binaries: kubelet, kube-proxy, containerd, containerd-shim-runc-v2, runc and the CNI plugins")
	flag.StringVar(&c.sandboxImage, "sandbox-image", "", "the real nodes' pod sandbox (pause) image, which the caller imports")
	flag.StringVar(&c.clusterDNS, "cluster-dns", "", "the cluster DNS Service's address the real nodes' pods use, which the caller installs")
	flag.BoolVar(&c.cleanNodes, "clean-nodes", false, "undo what the real nodes of --dir left (after a crash or a kill) and exit")
	flag.StringVar(&c.auditPolicy, "audit-policy-file", "", "audit Policy file for kube-apiserver (the hardened cluster's AuditPolicy); required")
	flag.StringVar(&c.authnConfig, "authentication-config", "", "AuthenticationConfiguration file for kube-apiserver (structured JWT authenticators)")
	flag.Var(&c.apiserverArgs, "apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--v=2 (repeatable; later flags win)")
	flag.BoolVar(&c.unsafeNoFsync, "unsafe-no-fsync", false, "skip etcd fsync (faster tests; data may be lost on a crash, not on a clean stop)")
	version := flag.Bool("version", false, "print the Kubernetes version and exit")
	flag.Parse()
	if *version {
		fmt.Println(kubeVersion())
		return
	}
	if c.cleanNodes {
		if err := cleanNodes(c.dir); err != nil {
			fmt.Fprintf(os.Stderr, "kcp: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(c); err != nil {
		fmt.Fprintf(os.Stderr, "kcp: %v\n", err)
		os.Exit(1)
	}
}

func (c *config) validate() error {
	if c.dir == "" {
		return errors.New("--dir is required: the cluster's data directory, e.g. --dir .state/clusters/dev")
	}
	if c.name == "" {
		c.name = filepath.Base(c.dir)
	}
	if c.etcdPort == 0 {
		c.etcdPort = c.port + 10000
	}
	if c.nodes > 0 && c.kwok == "" {
		return errors.New("--nodes needs --kwok: the kwok binary that fakes the nodes")
	}
	if c.realNodes > 0 && (c.sandboxImage == "" || net.ParseIP(c.clusterDNS) == nil) {
		return errors.New("--real-nodes needs --sandbox-image (the pause image) and --cluster-dns (an address in 10.96.0.0/16)")
	}
	if c.realNodes > 0 {
		for _, b := range append([]string{"kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "runc"}, cniPlugins...) {
			if c.nodeBin == "" || !exists(filepath.Join(c.nodeBin, b)) {
				return fmt.Errorf("--real-nodes needs --node-bin, a folder with %s (tools/build.sh node builds it)", b)
			}
		}
	}
	if c.auditPolicy == "" || !exists(c.auditPolicy) {
		return fmt.Errorf("--audit-policy-file %q: required, an existing audit Policy file", c.auditPolicy)
	}
	if c.authnConfig != "" && !exists(c.authnConfig) {
		return fmt.Errorf("--authentication-config %s: no such file", c.authnConfig)
	}
	for _, p := range []struct {
		flag string
		port int
	}{{"--port", c.port}, {"--etcd-port", c.etcdPort}, {"--etcd-port (+1, etcd peer)", c.etcdPort + 1}} {
		if p.port <= 0 || p.port > 65535 {
			return fmt.Errorf("%s %d: not a TCP port", p.flag, p.port)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))
		if err != nil {
			return fmt.Errorf("%s %d is in use on 127.0.0.1: stop what listens there or choose another port", p.flag, p.port)
		}
		l.Close()
	}
	return nil
}

func run(c config) error {
	start := time.Now()
	if err := c.validate(); err != nil {
		return err
	}
	dir, err := filepath.Abs(c.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Real nodes first: etcd also listens where they reach it (a control-plane node's pods
	// take etcd snapshots there), and its certificate names that address.
	var nodes []*realNode
	var etcdIPs []net.IP
	if c.realNodes > 0 {
		if nodes, err = allocateNodes(dir, c.name, c.realNodes); err != nil {
			return errors.Join(err, cleanNodes(dir))
		}
		defer func() { stopNodes(dir, nodes) }() // on the paths that return early
		c.apiserverArgs = append(c.apiserverArgs, realNodesAPIServerArgs(nodes)...)
		etcdIPs = []net.IP{net.ParseIP(nodes[0].hostIP())}
	}
	p := pki{dir: filepath.Join(dir, "pki")}
	if err := p.ensure(etcdIPs...); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	etcd, err := startEtcd(c, dir, p, etcdIPs...)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()

	server := fmt.Sprintf("https://127.0.0.1:%d", c.port)
	if err := componentKubeconfigs(dir, c.name, server, p); err != nil {
		return err
	}
	args, err := apiserverArgs(c, dir, p)
	if err != nil {
		return err
	}
	if err := writeManifest(dir, "kube-apiserver", args); err != nil {
		return err
	}
	errc := make(chan error, 4)
	apiDone := make(chan struct{})
	go func() { errc <- prefix("kube-apiserver", runAPIServer(ctx, args)); close(apiDone) }()
	if err := waitReady(ctx, server, p, 60*time.Second, errc); err != nil {
		return err
	}
	if err := startControllers(ctx, dir, p, errc); err != nil {
		return err
	}
	if err := startKWOK(ctx, c, dir, errc); err != nil {
		return err
	}
	if err := startNodes(ctx, dir, c, server, p, nodes); err != nil {
		return err
	}
	fmt.Printf("kcp: cluster %q ready in %.2fs at %s (kubeconfig %s)\n", c.name, time.Since(start).Seconds(), server, filepath.Join(dir, "kubeconfig"))

	select {
	case <-ctx.Done():
		fmt.Println("kcp: stopping")
	case err = <-errc:
		stop()
	}
	stopNodes(dir, nodes) // first: the API server's shutdown waits for the kubelets' watches
	nodes = nil
	select { // let the apiserver finish its graceful shutdown before etcd closes
	case <-apiDone:
	case <-time.After(30 * time.Second):
	}
	return err
}

// componentKubeconfigs writes the kubeconfigs of the admin and of the control plane's components.
// startControllers records the controller manager's and the scheduler's flags as manifests (as
// the API server's and etcd's) and starts both; their errors go to errc.
func startControllers(ctx context.Context, dir string, p pki, errc chan error) error {
	kcm, sched := controllerManagerArgs(dir, p), schedulerArgs(dir)
	for name, args := range map[string][]string{"kube-controller-manager": kcm, "kube-scheduler": sched} {
		if err := writeManifest(dir, name, args); err != nil {
			return err
		}
	}
	go func() { errc <- prefix("kube-controller-manager", runControllerManager(ctx, kcm)) }()
	go func() { errc <- prefix("kube-scheduler", runScheduler(ctx, sched)) }()
	return nil
}

func componentKubeconfigs(dir, cluster, server string, p pki) error {
	for _, u := range []string{"admin", "controller-manager", "scheduler", "kwok"} {
		name := u + ".kubeconfig"
		if u == "admin" {
			name = "kubeconfig"
		}
		if err := kubeconfig(filepath.Join(dir, name), cluster, server, p, u, ""); err != nil {
			return err
		}
	}
	return nil
}

// startKWOK registers the KWOK nodes, supervises KWOK and waits until its nodes are Ready (no
// --kwok: nothing to do).
func startKWOK(ctx context.Context, c config, dir string, errc chan error) error {
	if c.kwok == "" {
		return nil
	}
	if err := registerNodes(ctx, filepath.Join(dir, "kubeconfig"), c.nodes); err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	go func() { errc <- prefix("kwok", runKWOK(ctx, c.kwok, dir)) }()
	return waitNodesReady(ctx, filepath.Join(dir, "kubeconfig"), "type=kwok", c.nodes, 60*time.Second)
}

// stopNodes stops the real nodes, all at once, and undoes what they made.
func stopNodes(dir string, nodes []*realNode) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.stop(); err != nil {
				fmt.Fprintf(os.Stderr, "kcp: node %s: %v\n", n.name, err)
			}
		}()
	}
	wg.Wait()
	if len(nodes) > 0 {
		_ = os.Remove(nodesState(dir))
	}
}

func prefix(component string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s stopped", component)
	}
	return fmt.Errorf("%s: %w", component, err)
}

// waitReady polls /readyz with the admin identity (anonymous access is off).
func waitReady(ctx context.Context, server string, p pki, timeout time.Duration, errc chan error) error {
	client, err := adminHTTP(p)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get(server + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("kube-apiserver not ready after %s (see the log above)", timeout)
}

func adminHTTP(p pki) (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(p.path("admin.crt"), p.path("admin.key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}}, nil
}
