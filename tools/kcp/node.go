package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A real node (--real-nodes): a network namespace of its own on this host, joined to it by a
// veth pair, where containerd (runc, the CNI plugins bridge, host-local, loopback and portmap),
// the kubelet and kube-proxy of this release run. Each node holds a host-wide slot k (1-250):
//
//	netns kplane-n<k>, veth kpn<k> (host 10.243.k.1/30) <-> eth0 (node 10.243.k.2/30),
//	pods 10.244.k.0/24 on the bridge kpbr0 inside the netns, routed by the host,
//	cgroup /kplane-n<k> in every v1 hierarchy (the node's processes, its pods under it).
//
// The API server listens on every address (the nodes reach it at their host end) and advertises
// the first node's host end (the kubernetes Service's endpoint, reached by pods). Everything a
// node made is undone when kcp stops (or by kcp --clean-nodes): its processes and pods, mounts,
// pod network namespaces, the netns with its interfaces and iptables rules, cgroups, files.
type realNode struct {
	name, dir string
	slot      int
	procs     []*exec.Cmd
}

const nodeLockFile = "/run/kplane-nodes.lock"

func (n *realNode) netns() string     { return fmt.Sprintf("kplane-n%d", n.slot) }
func (n *realNode) netnsPath() string { return "/run/netns/" + n.netns() }
func (n *realNode) hostIP() string    { return fmt.Sprintf("10.243.%d.1", n.slot) }
func (n *realNode) nodeIP() string    { return fmt.Sprintf("10.243.%d.2", n.slot) }
func (n *realNode) podCIDR() string   { return fmt.Sprintf("10.244.%d.0/24", n.slot) }
func (n *realNode) cgroup() string    { return fmt.Sprintf("kplane-n%d", n.slot) }
func (n *realNode) path(p string) string {
	return filepath.Join(n.dir, p)
}

// nodesState is <dir>/nodes/slots: the slots this cluster's nodes hold (for the clean-up).
func nodesState(dir string) string { return filepath.Join(dir, "nodes", "slots") }

// allocateNodes takes n free slots (no netns of that slot exists) under a host-wide lock, or
// the slots this cluster held before (a restart).
func allocateNodes(dir, cluster string, n int) ([]*realNode, error) {
	lock, err := os.OpenFile(nodeLockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("real nodes need root (%s): %w", nodeLockFile, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	held, _ := readSlots(dir)
	var nodes []*realNode
	for k := 1; k <= 250 && len(nodes) < n; k++ {
		_, err := os.Stat(fmt.Sprintf("/run/netns/kplane-n%d", k))
		if !slices.Contains(held, k) && err == nil {
			continue // another cluster's node
		}
		name := fmt.Sprintf("%s-node-%d", cluster, len(nodes))
		node := &realNode{name: name, slot: k, dir: filepath.Join(dir, "nodes", name)}
		if err := node.network(); err != nil {
			return nil, err
		}
		nodes = append(nodes, node)
	}
	if len(nodes) < n {
		return nil, fmt.Errorf("real nodes: no free slot for %d nodes (250 per host)", n)
	}
	var slots []string
	for _, node := range nodes {
		slots = append(slots, strconv.Itoa(node.slot))
	}
	if err := os.MkdirAll(filepath.Dir(nodesState(dir)), 0o700); err != nil {
		return nil, err
	}
	return nodes, writeFile(nodesState(dir), []byte(strings.Join(slots, "\n")+"\n"), 0o600)
}

func readSlots(dir string) ([]int, error) {
	raw, err := os.ReadFile(nodesState(dir))
	var slots []int
	for _, f := range strings.Fields(string(raw)) {
		if k, err := strconv.Atoi(f); err == nil {
			slots = append(slots, k)
		}
	}
	return slots, err
}

// sh runs a command, its output in the error.
func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNode runs a command in the node's network namespace.
func (n *realNode) inNode(name string, args ...string) error {
	return sh("nsenter", append([]string{"--net=" + n.netnsPath(), name}, args...)...)
}

// network creates the node's netns and veth pair (again after a crash: what is left is removed
// first), its addresses and routes, and forwarding on both sides.
func (n *realNode) network() error {
	n.cleanNetwork()
	veth := fmt.Sprintf("kpn%d", n.slot)
	for _, step := range [][]string{
		{"netns", "add", n.netns()},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", n.netns()},
		{"addr", "add", n.hostIP() + "/30", "dev", veth},
		{"link", "set", veth, "up"},
		{"route", "replace", n.podCIDR(), "via", n.nodeIP()},
		{"-n", n.netns(), "addr", "add", n.nodeIP() + "/30", "dev", "eth0"},
		{"-n", n.netns(), "link", "set", "eth0", "up"},
		{"-n", n.netns(), "link", "set", "lo", "up"},
		{"-n", n.netns(), "route", "add", "default", "via", n.hostIP()},
	} {
		if err := sh("ip", step...); err != nil {
			return err
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return err
	}
	// Services whose backend is on the same bridge as the client: kube-proxy masquerades all
	// service traffic (masqueradeAll), so br_netfilter is not needed.
	return n.inNode("sysctl", "-qw", "net.ipv4.ip_forward=1")
}

// cleanNetwork removes the node's netns (its interfaces, the veth pair's both ends, the bridge
// and kube-proxy's rules go with it) and the host's route to its pods.
func (n *realNode) cleanNetwork() {
	_ = sh("ip", "route", "del", n.podCIDR())
	if _, err := os.Stat(n.netnsPath()); err == nil {
		_ = sh("ip", "netns", "del", n.netns())
	}
}

// cgroupHierarchies are the mounted cgroup hierarchies: v1's (cpu,cpuacct once, not its links)
// and the hybrid host's v2 "unified" one, where runc puts the pods too.
func cgroupHierarchies() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if e.IsDir() && e.Type()&os.ModeSymlink == 0 && exists(filepath.Join(p, "cgroup.procs")) {
			out = append(out, p)
		}
	}
	return out
}

// joinCgroup moves pid into the node's cgroup (…/kplane-n<k>/node) in every hierarchy; what it
// starts stays there (containerd's shims and the pods' processes are under kplane-n<k> too).
func (n *realNode) joinCgroup(pid int) error {
	for _, h := range cgroupHierarchies() {
		if filepath.Base(h) == "unified" { // v2's rule: no processes beside child cgroups
			continue
		}
		dir := filepath.Join(h, n.cgroup(), "node")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if filepath.Base(h) == "cpuset" { // a new cpuset is empty until given cpus and mems
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, _ := os.ReadFile(filepath.Join(h, f))
				_ = os.WriteFile(filepath.Join(h, n.cgroup(), f), v, 0o644)
				_ = os.WriteFile(filepath.Join(dir, f), v, 0o644)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// cgroupPIDs are the processes anywhere under the node's cgroup.
func (n *realNode) cgroupPIDs() []int {
	var pids []int
	root := filepath.Join("/sys/fs/cgroup", "pids", n.cgroup())
	if !exists(root) {
		root = filepath.Join("/sys/fs/cgroup", "memory", n.cgroup())
	}
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "cgroup.procs" {
			raw, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(raw)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		return nil
	})
	return pids
}

// clean undoes everything the node made: its processes and pods (killed), every mount under its
// folder (the pods' network namespaces and root filesystems, the kubelet's volumes), the netns,
// the cgroups, the kubelet's links in /var/log/containers, and the folder.
func (n *realNode) clean() error {
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pids := n.cgroupPIDs()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: processes %v do not end", n.name, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	var errs []error
	errs = append(errs, unmountUnder(n.dir))
	n.cleanNetwork()
	for _, h := range cgroupHierarchies() {
		errs = append(errs, removeCgroup(filepath.Join(h, n.cgroup())))
	}
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, n.dir+"/") {
			errs = append(errs, os.Remove(l))
		}
	}
	errs = append(errs, os.RemoveAll(n.dir))
	return errors.Join(errs...)
}

// unmountUnder unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(unescapeMount(fields[4]), dir+"/") {
			points = append(points, unescapeMount(fields[4]))
		}
	}
	slices.SortFunc(points, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// removeCgroup removes a cgroup directory tree, children first.
func removeCgroup(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
	}
}

// cleanNodes undoes the nodes a cluster held (kcp --clean-nodes, after a crash or a kill).
func cleanNodes(dir string) error {
	slots, err := readSlots(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "nodes"))
	var errs []error
	for i, k := range slots {
		name := fmt.Sprintf("node-%d", i)
		for _, e := range entries { // the node's folder, whatever the cluster was called
			if e.IsDir() && strings.HasSuffix(e.Name(), "-node-"+strconv.Itoa(i)) {
				name = e.Name()
			}
		}
		errs = append(errs, (&realNode{name: name, slot: k, dir: filepath.Join(dir, "nodes", name)}).clean())
	}
	errs = append(errs, os.Remove(nodesState(dir)))
	return errors.Join(errs...)
}

// startProcess starts a node component in the node's netns and cgroup, its output in log.
func (n *realNode) startProcess(ctx context.Context, bin, path string, args ...string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(n.path(filepath.Base(bin)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.netnsPath(), bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH="+path)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := n.joinCgroup(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	n.procs = append(n.procs, cmd)
	return cmd, nil
}

// waitSocket waits until a unix socket accepts connections.
func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not listening after %s", path, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
