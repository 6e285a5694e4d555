package nodecheck

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
