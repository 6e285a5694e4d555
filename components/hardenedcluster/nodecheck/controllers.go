package nodecheck

import (
	"fmt"
	"path/filepath"
	"strings"
)

// controllerChecks are CIS 1.3 (kube-controller-manager) and 1.4 (kube-scheduler), from their
// manifests' flags: KISA Master-03 (neither exposed beyond the node), Master-08 (controllers
// authenticate as their own service accounts) and Master-09 (the controllers' TLS material).
func controllerChecks() []Check {
	kcm := func(id string, kisa []string, title, fix string, test func(f map[string]string) (bool, string)) Check {
		return Check{ID: id, KISA: kisa, Title: title, Fix: fix, Run: flags("kube-controller-manager", test)}
	}
	sched := func(id string, kisa []string, title, fix string, test func(f map[string]string) (bool, string)) Check {
		return Check{ID: id, KISA: kisa, Title: title, Fix: fix, Run: flags("kube-scheduler", test)}
	}
	return []Check{
		kcm("1.3.1", nil, "terminated pods are garbage-collected at a threshold", "--terminated-pod-gc-threshold, e.g. 10", set("terminated-pod-gc-threshold")),
		kcm("1.3.2", []string{"Master-03"}, "the controller manager's profiling is off", "--profiling=false", eq("profiling", "false", "true")),
		kcm("1.3.3", []string{"Master-08"}, "each controller uses its own service account", "--use-service-account-credentials=true", eq("use-service-account-credentials", "true", "false")),
		kcm("1.3.4", []string{"Master-08"}, "service account tokens are signed with a key file", "--service-account-private-key-file", set("service-account-private-key-file")),
		kcm("1.3.5", []string{"Master-09"}, "service account tokens carry the cluster's CA", "--root-ca-file", set("root-ca-file")),
		kcm("1.3.6", []string{"Master-09"}, "kubelet serving certificates rotate", "remove RotateKubeletServerCertificate=false from --feature-gates", listLacks("feature-gates", "RotateKubeletServerCertificate=false", "")),
		kcm("1.3.7", []string{"Master-03"}, "the controller manager listens on loopback only", "--bind-address=127.0.0.1", eq("bind-address", "127.0.0.1", "0.0.0.0")),
		sched("1.4.1", []string{"Master-03"}, "the scheduler's profiling is off", "--profiling=false", eq("profiling", "false", "true")),
		sched("1.4.2", []string{"Master-03"}, "the scheduler listens on loopback only", "--bind-address=127.0.0.1", eq("bind-address", "127.0.0.1", "0.0.0.0")),
	}
}

// kubeconfigChecks are CIS 1.1.13-1.1.18: the kubeconfig files of the administrator (kubeadm's
// admin.conf and super-admin.conf), the scheduler and the controller manager (each as its
// manifest's --kubeconfig names it) hold cluster credentials: 600 and root:root (KISA
// Master-14, reconstructed).
func kubeconfigChecks() []Check {
	admin := func(n *Node) []string {
		dir := filepath.Dir(n.Paths.Manifests)
		return []string{filepath.Join(dir, "admin.conf"), filepath.Join(dir, "super-admin.conf")}
	}
	of := func(component string) func(*Node) []string {
		return func(n *Node) []string { return []string{n.flags[component]["kubeconfig"]} }
	}
	var out []Check
	for i, f := range []struct {
		who   string
		paths func(*Node) []string
	}{{"the administrator's", admin}, {"the scheduler's", of("kube-scheduler")}, {"the controller manager's", of("kube-controller-manager")}} {
		out = append(out,
			Check{ID: fmt.Sprintf("1.1.%d", 13+2*i), KISA: []string{"Master-14"}, Title: f.who + " kubeconfig permissions are 600 or stricter",
				Fix: "chmod 600 the kubeconfig", Run: everyFile(f.paths, func(p func(*Node) string) func(*Node) (Status, string) { return perm(p, 0o600) })},
			Check{ID: fmt.Sprintf("1.1.%d", 14+2*i), KISA: []string{"Master-14"}, Title: f.who + " kubeconfig is owned by root:root",
				Fix: "chown root:root the kubeconfig", Run: everyFile(f.paths, func(p func(*Node) string) func(*Node) (Status, string) { return owner(p, 0, 0) })})
	}
	return out
}

// everyFile runs a file check on each of paths: Fail if one fails, Skip if none is on the node.
func everyFile(paths func(*Node) []string, check func(func(*Node) string) func(*Node) (Status, string)) func(*Node) (Status, string) {
	return func(n *Node) (Status, string) {
		status, details := Skip, []string{}
		for _, p := range paths(n) {
			s, d := check(func(*Node) string { return p })(n)
			if s == Skip {
				continue
			}
			details = append(details, d)
			if status == Skip || s == Fail || (s == Warn && status == Pass) {
				status = s
			}
		}
		if status == Skip {
			return Skip, "not on this node"
		}
		return status, strings.Join(details, "; ")
	}
}
