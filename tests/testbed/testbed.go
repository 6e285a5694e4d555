// Package testbed starts real local Kubernetes control planes (kplane's kcp: embedded etcd,
// kube-apiserver, controller-manager and scheduler in one process) with KWOK nodes, for tests
// and for `make cluster`. Binaries come from kplane's tool cache (`make tools`), found through
// KPLANE_KCP / KPLANE_KWOK or PATH.
package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kplane/kplane/components/hardenedcluster"
)

// Options for one cluster.
type Options struct {
	// Nodes is the number of KWOK nodes (default 1; 0 is allowed with NoNodes).
	Nodes   int
	NoNodes bool
	// RealNodes is the number of nodes that run real pods (kcp --real-nodes: containerd, runc,
	// CNI, kubelet and kube-proxy, each in a network namespace; needs root and tools/build.sh
	// node); with RealNodes and no Nodes, the cluster has no KWOK node.
	RealNodes int
	// Port of the API server on 127.0.0.1; 0 picks a free one (kept across restarts).
	Port int
	// AuthenticationConfig is an AuthenticationConfiguration file for the API server.
	AuthenticationConfig string
	// APIServerArgs are extra kube-apiserver flags ("--flag=value").
	APIServerArgs []string
	// Detached starts the control plane in its own session so it outlives the caller
	// (`make cluster`); otherwise it dies with the caller (tests never leak processes).
	Detached bool
	// Durable keeps etcd's fsync on (default off for tests: a clean stop still keeps all data).
	Durable bool
	// ReadyTimeout bounds the start (default 120 s: cold disks and busy CI machines).
	ReadyTimeout time.Duration
}

// Cluster is one running (or stopped) local cluster.
type Cluster struct {
	Name       string
	Dir        string // data directory: pki, etcd, audit log, kubeconfig, kcp.log
	Kubeconfig string
	Server     string
	Port       int
	EtcdPort   int
	// ReadyIn is how long the last start took until /readyz answered.
	ReadyIn time.Duration

	opts Options
	cmd  *exec.Cmd
	done chan error
}

// state is what Detached clusters keep on disk for later stop/start.
type state struct {
	Port     int `json:"port"`
	EtcdPort int `json:"etcdPort"`
	Nodes    int `json:"nodes"`
	PID      int `json:"pid"`
}

// Binary finds a test-bed binary: $KPLANE_<NAME> or PATH.
func Binary(name string) (string, error) {
	if p := os.Getenv("KPLANE_" + strings.ToUpper(name)); p != "" {
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: run `make tools` and `eval \"$(make -s env)\"` (or set KPLANE_%s)", name, strings.ToUpper(name))
	}
	return p, nil
}

// SwaggerUI is the swagger-ui-dist folder of the tool cache (make tools fetches it).
func SwaggerUI(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KPLANE_SWAGGER_UI")
	if dir == "" {
		t.Fatal("KPLANE_SWAGGER_UI is not set: run `make tools` and `eval \"$(make -s env)\"`")
	}
	return dir
}

// New describes a cluster in dir without starting it; ports persisted in dir are reused.
func New(name, dir string, opts Options) (*Cluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if opts.Nodes == 0 && !opts.NoNodes && opts.RealNodes == 0 {
		opts.Nodes = 1
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 120 * time.Second
	}
	c := &Cluster{Name: name, Dir: abs, Kubeconfig: filepath.Join(abs, "kubeconfig"), opts: opts}
	if st, err := c.loadState(); err == nil {
		c.Port, c.EtcdPort = st.Port, st.EtcdPort
	}
	if opts.Port != 0 {
		c.Port = opts.Port
	}
	return c, nil
}

// Start starts the cluster and waits until its API server is ready.
func Start(ctx context.Context, name, dir string, opts Options) (*Cluster, error) {
	c, err := New(name, dir, opts)
	if err != nil {
		return nil, err
	}
	return c, c.Start(ctx)
}

// Start (re)starts the control plane on its data directory and waits for readiness.
func (c *Cluster) Start(ctx context.Context) error {
	kcp, err := Binary("kcp")
	if err != nil {
		return err
	}
	kwok, err := Binary("kwok")
	if err != nil && c.opts.Nodes > 0 {
		return err
	}
	if c.Port == 0 {
		if c.Port, err = freePort(1); err != nil {
			return err
		}
	}
	if c.EtcdPort == 0 {
		if c.EtcdPort, err = freePort(2); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return err
	}
	// The API server audits with the hardened cluster's policy (CIS 3.2), as a platform applies it.
	audit := filepath.Join(c.Dir, "audit-policy.yaml")
	if err := os.WriteFile(audit, []byte(hardenedcluster.AuditPolicy()), 0o600); err != nil {
		return err
	}
	args := []string{"--dir", c.Dir, "--name", c.Name, "--port", strconv.Itoa(c.Port), "--etcd-port", strconv.Itoa(c.EtcdPort), "--audit-policy-file", audit}
	if c.opts.Nodes > 0 {
		args = append(args, "--nodes", strconv.Itoa(c.opts.Nodes), "--kwok", kwok)
	}
	if c.opts.RealNodes > 0 {
		bin, err := nodeBin()
		if err != nil {
			return err
		}
		args = append(args, "--real-nodes", strconv.Itoa(c.opts.RealNodes), "--node-bin", bin, "--sandbox-image", PauseImage, "--cluster-dns", ClusterDNS)
	}
	if !c.opts.Durable {
		args = append(args, "--unsafe-no-fsync")
	}
	if c.opts.AuthenticationConfig != "" {
		args = append(args, "--authentication-config", c.opts.AuthenticationConfig)
	}
	for _, a := range c.opts.APIServerArgs {
		args = append(args, "--apiserver-arg="+a)
	}
	logPath := filepath.Join(c.Dir, "kcp.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(kcp, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if c.opts.Detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	c.cmd, c.done = cmd, make(chan error, 1)
	go func() { c.done <- cmd.Wait() }()
	if err := c.saveState(cmd.Process.Pid); err != nil {
		return err
	}
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", c.Port)
	deadline := time.NewTimer(c.opts.ReadyTimeout)
	defer deadline.Stop()
	for {
		select {
		case err := <-c.done:
			c.cmd = nil
			return fmt.Errorf("cluster %s: kcp exited (%v): %s", c.Name, err, lastLines(logPath, 8))
		case <-ctx.Done():
			_ = c.Stop()
			return ctx.Err()
		case <-deadline.C:
			_ = c.Stop()
			return fmt.Errorf("cluster %s: not ready after %s: %s", c.Name, c.opts.ReadyTimeout, lastLines(logPath, 8))
		case <-time.After(50 * time.Millisecond):
		}
		if logHas(logPath, "kcp: cluster ") {
			c.ReadyIn = time.Since(begin)
			return c.realNodeAddons(ctx)
		}
	}
}

// SetAPIServerArgs replaces the extra kube-apiserver flags used by the next Start (e.g. a
// --client-ca-file that includes a CA created after the cluster's first start).
func (c *Cluster) SetAPIServerArgs(args ...string) { c.opts.APIServerArgs = args }

// Stop stops the control plane gracefully (SIGTERM, then SIGKILL after 30 s, 60 s with real
// nodes). Data is kept.
func (c *Cluster) Stop() error {
	pid := 0
	if c.cmd != nil {
		pid = c.cmd.Process.Pid
	} else if st, err := c.loadState(); err == nil {
		pid = st.PID
	}
	if pid == 0 || !alive(pid) {
		c.cmd = nil
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	grace := 30 * time.Second
	if _, err := os.Stat(filepath.Join(c.Dir, "nodes", "slots")); err == nil { // real nodes stop and clean up first
		grace = 60 * time.Second
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if c.cmd != nil {
			select {
			case <-c.done:
				c.cmd = nil
				return nil
			case <-time.After(50 * time.Millisecond):
			}
		} else if !alive(pid) {
			return nil
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	c.cmd = nil
	return fmt.Errorf("cluster %s: did not stop within %s; killed", c.Name, grace)
}

// Delete stops the cluster and removes its data directory (and whatever its real nodes left
// if kcp was killed).
func (c *Cluster) Delete() error {
	err := c.Stop()
	return errors.Join(err, c.cleanRealNodes(), os.RemoveAll(c.Dir))
}

// Running reports whether the cluster's control plane process is alive.
func (c *Cluster) Running() bool {
	if c.cmd != nil {
		return true
	}
	st, err := c.loadState()
	return err == nil && st.PID != 0 && alive(st.PID)
}

// PIDs returns the control plane's process and its children (KWOK), for RSS measurements.
func (c *Cluster) PIDs() []int {
	st, err := c.loadState()
	if err != nil || st.PID == 0 {
		return nil
	}
	pids := []int{st.PID}
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", st.PID, st.PID))
	for _, f := range strings.Fields(string(children)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// RSS is the resident memory of the control plane and its KWOK child, in bytes.
func (c *Cluster) RSS() int64 {
	var total int64
	for _, pid := range c.PIDs() {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb * 1024
			}
		}
	}
	return total
}

func (c *Cluster) statePath() string { return filepath.Join(c.Dir, "testbed.json") }

func (c *Cluster) loadState() (state, error) {
	var st state
	b, err := os.ReadFile(c.statePath())
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func (c *Cluster) saveState(pid int) error {
	b, _ := json.Marshal(state{Port: c.Port, EtcdPort: c.EtcdPort, Nodes: c.opts.Nodes, PID: pid})
	return os.WriteFile(c.statePath(), b, 0o600)
}

// freePort finds n consecutive free loopback ports (etcd needs client and peer side by side).
// They are drawn below the kernel's ephemeral range (32768+), where outgoing connections and
// port-0 listeners (Pulumi's plugins) take theirs: a port handed out now and bound seconds later
// (a webhook's, known before its server starts) cannot be taken in between by one of those.
func freePort(n int) (int, error) {
	// Ports handed out in this process are not handed out again: clusters started together
	// each bind theirs only later.
	portsMu.Lock()
	defer portsMu.Unlock()
	for try := 0; try < 200; try++ {
		port := 20000 + rand.Intn(12000)
		ok := true
		for i := 0; i < n && ok; i++ {
			if handedOut[port+i] {
				ok = false
				continue
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+i))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			for i := 0; i < n; i++ {
				handedOut[port+i] = true
			}
			return port, nil
		}
	}
	return 0, errors.New("no free loopback ports")
}

var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{}
)

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie ("Z") has exited already.
	f := strings.Fields(string(stat))
	return len(f) < 3 || f[2] != "Z"
}

func logHas(path, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1024*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}

func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
