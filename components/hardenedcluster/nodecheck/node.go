// Package nodecheck checks a node against the CIS Kubernetes Benchmark 1.12 (automated node,
// control-plane and etcd items) and the KISA cloud vulnerability guide's Kubernetes Master and
// Worker items, kube-bench style: it reads the node's files and the components' flags (from
// kubeadm-style static pod manifests) and the kubelet's configuration file, and reports each
// control as PASS, FAIL, WARN (needs a person) or SKIP (not on this node). The kubelet's flags
// (its systemd drop-ins and the environment files they name) override its configuration file,
// as they do for the kubelet itself. Every result names its
// CIS id and the KISA items it maps to, so one run answers both audits.
package nodecheck

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"
)

// Paths are where a node keeps what is checked (kubeadm's layout by default), relative to Root.
type Paths struct {
	KubeletConfig     string `json:"kubeletConfig"`     // KubeletConfiguration file
	KubeletKubeconfig string `json:"kubeletKubeconfig"` // the kubelet's kubeconfig
	KubeletService    string `json:"kubeletService"`    // the kubelet's systemd unit drop-in
	Manifests         string `json:"manifests"`         // static pod manifests (control-plane nodes)
	PKI               string `json:"pki"`               // control-plane certificates and keys
}

// DefaultPaths is kubeadm's layout.
func DefaultPaths() Paths {
	return Paths{
		KubeletConfig:     "/var/lib/kubelet/config.yaml",
		KubeletKubeconfig: "/etc/kubernetes/kubelet.conf",
		KubeletService:    "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
		Manifests:         "/etc/kubernetes/manifests",
		PKI:               "/etc/kubernetes/pki",
	}
}

// Node is what the checks look at on one node.
type Node struct {
	Root  string // the host's filesystem ("/", or where it is mounted in the check's pod)
	Paths Paths

	kubelet    map[string]any               // the KubeletConfiguration with its flags laid over; nil: no kubelet here
	flagSource map[string]string            // kubelet field -> the flag that set it
	cmdline    map[string]string            // the kubelet's command-line flags
	flags      map[string]map[string]string // component -> flag -> value, from its manifest
	loadError  []string
}

// Load reads a node's kubelet configuration and flags and its control-plane manifests. Missing
// files are not errors (a worker has no manifests); unreadable or malformed ones are reported by
// the checks. A --config flag names the configuration file the kubelet really reads.
func Load(root string, p Paths) *Node {
	n := &Node{Root: root, Paths: p, flags: map[string]map[string]string{}, flagSource: map[string]string{}}
	cmdline, files := n.kubeletCommandLine()
	kubeletFlags := parseFlags(cmdline)
	n.cmdline = kubeletFlags
	if c := kubeletFlags["config"]; c != "" {
		n.Paths.KubeletConfig = c
	}
	if b, err := os.ReadFile(n.path(n.Paths.KubeletConfig)); err == nil {
		if err := yaml.Unmarshal(b, &n.kubelet); err != nil {
			n.loadError = append(n.loadError, fmt.Sprintf("%s: %v", n.Paths.KubeletConfig, err))
		}
	}
	n.applyKubeletFlags(kubeletFlags, files)
	for _, component := range []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"} {
		b, err := os.ReadFile(n.path(filepath.Join(p.Manifests, component+".yaml")))
		if err != nil {
			continue
		}
		var pod struct {
			Spec struct {
				Containers []struct {
					Command []string `yaml:"command"`
					Args    []string `yaml:"args"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal(b, &pod); err != nil || len(pod.Spec.Containers) == 0 {
			n.loadError = append(n.loadError, fmt.Sprintf("%s manifest: not a pod with a container", component))
			continue
		}
		c := pod.Spec.Containers[0]
		n.flags[component] = parseFlags(append(c.Command, c.Args...))
	}
	return n
}

// parseFlags turns "--name=value" (and "--name value") arguments into a map.
func parseFlags(args []string) map[string]string {
	flags := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok {
			value = "true"
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				value, i = args[i+1], i+1
			}
		}
		flags[name] = value
	}
	return flags
}

func (n *Node) path(p string) string { return filepath.Join(n.Root, p) }

// fileInfo is what the permission checks need of a file.
type fileInfo struct {
	exists   bool
	mode     os.FileMode
	uid, gid uint32
}

func (n *Node) stat(p string) (fileInfo, error) {
	st, err := os.Stat(n.path(p))
	if os.IsNotExist(err) {
		return fileInfo{}, nil
	}
	if err != nil {
		return fileInfo{}, err
	}
	sys := st.Sys().(*syscall.Stat_t)
	return fileInfo{exists: true, mode: st.Mode().Perm(), uid: sys.Uid, gid: sys.Gid}, nil
}

// kubeletValue is a field of the kubelet configuration by dotted path ("authentication.anonymous.enabled").
func (n *Node) kubeletValue(path string) (any, bool) {
	var cur any = n.kubelet
	for _, key := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}
