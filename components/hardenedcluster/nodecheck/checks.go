package nodecheck

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Status of one check on one node.
type Status string

const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Warn Status = "WARN" // a person must judge (CIS "Manual"), or the input is unreadable
	Skip Status = "SKIP" // not on this node (a worker has no API server)
)

// Result is one check's outcome, with both audits' references and the fix.
type Result struct {
	ID     string   `json:"id"`   // CIS Kubernetes Benchmark 1.12 id
	KISA   []string `json:"kisa"` // KISA cloud guide items (Master-NN, Worker-NN)
	Title  string   `json:"title"`
	Status Status   `json:"status"`
	Detail string   `json:"detail,omitempty"`
	Fix    string   `json:"fix,omitempty"`
}

// Check is one control.
type Check struct {
	ID, Title, Fix string
	KISA           []string
	Run            func(n *Node) (Status, string)
}

// KISABasis says what the KISA item ids rest on, in every report: the guide's Kubernetes items
// as public check scripts list them, not the published guide itself.
const KISABasis = "KISA cloud vulnerability check guide 2024.06, Kubernetes Master-01..17 and Worker-01..07: " +
	"item ids and their intent reconstructed from public check scripts, not verified against the published guide"

// Report is a node's results and their totals.
type Report struct {
	Node    string         `json:"node"`
	Results []Result       `json:"results"`
	Totals  map[Status]int `json:"totals"`
	// KISABasis: what the results' KISA ids rest on (reconstructed, see KISABasis).
	KISABasis string `json:"kisaBasis"`
}

// Run evaluates every check on n.
func Run(name string, n *Node) Report {
	r := Report{Node: name, Totals: map[Status]int{}, KISABasis: KISABasis}
	for _, e := range n.loadError {
		r.Results = append(r.Results, Result{ID: "input", Title: "node inputs are readable", Status: Warn, Detail: e})
		r.Totals[Warn]++
	}
	for _, c := range Checks() {
		status, detail := c.Run(n)
		res := Result{ID: c.ID, KISA: c.KISA, Title: c.Title, Status: status, Detail: detail}
		if status == Fail || status == Warn {
			res.Fix = c.Fix
		}
		r.Results = append(r.Results, res)
		r.Totals[status]++
	}
	return r
}

// strongCiphers are the TLS suites CIS 1.2.29/4.2.12 accept.
var strongCiphers = []string{
	"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// Checks is the catalog, in benchmark order.
func Checks() []Check {
	var cs []Check
	add := func(c ...Check) { cs = append(cs, c...) }

	// 1.1 control-plane files. KISA Master-14 accepts <= 644 where CIS wants 600: the check
	// holds to CIS (the stricter), so one pass satisfies both.
	for i, comp := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		manifest := func(n *Node) string { return filepath.Join(n.Paths.Manifests, comp+".yaml") }
		add(Check{ID: fmt.Sprintf("1.1.%d", 2*i+1), KISA: []string{"Master-14"}, Title: comp + " manifest permissions are 600 or stricter",
			Fix: "chmod 600 the manifest", Run: perm(manifest, 0o600)},
			Check{ID: fmt.Sprintf("1.1.%d", 2*i+2), KISA: []string{"Master-14"}, Title: comp + " manifest is owned by root:root",
				Fix: "chown root:root the manifest", Run: owner(manifest, 0, 0)})
	}
	add(Check{ID: "1.1.11", KISA: []string{"Master-16"}, Title: "etcd data directory permissions are 700 or stricter",
		Fix: "chmod 700 the etcd data directory (--data-dir)", Run: perm(etcdDataDir, 0o700)},
		Check{ID: "1.1.12", KISA: []string{"Master-16"}, Title: "etcd data directory is owned by etcd:etcd",
			Fix: "run etcd as its own user and chown etcd:etcd its data directory", Run: ownerName(etcdDataDir, "etcd")})
	add(kubeconfigChecks()...)
	add(Check{ID: "1.1.19", KISA: []string{"Master-15"}, Title: "the PKI directory and files are owned by root:root",
		Fix: "chown -R root:root the PKI directory", Run: pkiFiles("", 0, true)},
		Check{ID: "1.1.20", KISA: []string{"Master-15"}, Title: "PKI certificate files are 600 or stricter",
			Fix: "chmod 600 the PKI directory's *.crt", Run: pkiFiles(".crt", 0o600, false)},
		Check{ID: "1.1.21", KISA: []string{"Master-15"}, Title: "PKI key files are 600 or stricter",
			Fix: "chmod 600 the PKI directory's *.key", Run: pkiFiles(".key", 0o600, false)})

	// 1.2 API server.
	api := func(id string, kisa []string, title, fix string, test func(f map[string]string) (bool, string)) Check {
		return Check{ID: id, KISA: kisa, Title: title, Fix: fix, Run: flags("kube-apiserver", test)}
	}
	add(api("1.2.1", []string{"Master-01"}, "anonymous requests are refused", "--anonymous-auth=false", eq("anonymous-auth", "false", "true")),
		api("1.2.2", []string{"Master-02"}, "no static token file", "remove --token-auth-file", absent("token-auth-file")),
		api("1.2.4", []string{"Master-06"}, "the API server authenticates to kubelets with a client certificate", "--kubelet-client-certificate and --kubelet-client-key", set("kubelet-client-certificate", "kubelet-client-key")),
		api("1.2.5", []string{"Master-06"}, "the API server verifies kubelets' serving certificates", "--kubelet-certificate-authority", set("kubelet-certificate-authority")),
		api("1.2.6", []string{"Master-04"}, "authorization is not AlwaysAllow", "--authorization-mode=Node,RBAC", listLacks("authorization-mode", "AlwaysAllow", "AlwaysAllow")),
		api("1.2.7", []string{"Master-04"}, "authorization includes Node", "--authorization-mode=Node,RBAC", listHas("authorization-mode", "Node", "AlwaysAllow")),
		api("1.2.8", []string{"Master-04"}, "authorization includes RBAC", "--authorization-mode=Node,RBAC", listHas("authorization-mode", "RBAC", "AlwaysAllow")),
		api("1.2.10", []string{"Master-05"}, "the AlwaysAdmit admission plugin is off", "remove AlwaysAdmit from --enable-admission-plugins", listLacks("enable-admission-plugins", "AlwaysAdmit", "")),
		api("1.2.12", []string{"Master-05"}, "the ServiceAccount admission plugin is on", "remove ServiceAccount from --disable-admission-plugins", listLacks("disable-admission-plugins", "ServiceAccount", "")),
		api("1.2.13", []string{"Master-05"}, "the NamespaceLifecycle admission plugin is on", "remove NamespaceLifecycle from --disable-admission-plugins", listLacks("disable-admission-plugins", "NamespaceLifecycle", "")),
		api("1.2.14", []string{"Master-05"}, "the NodeRestriction admission plugin is on", "add NodeRestriction to --enable-admission-plugins", listHas("enable-admission-plugins", "NodeRestriction", "")),
		api("1.2.15", nil, "profiling is off", "--profiling=false", eq("profiling", "false", "true")),
		api("1.2.16", []string{"Master-07"}, "the audit log is written", "--audit-log-path and --audit-policy-file (the hardened cluster's AuditPolicy)", set("audit-log-path", "audit-policy-file")),
		api("1.2.17", []string{"Master-07"}, "audit logs are kept 30 days", "--audit-log-maxage=30", atLeast("audit-log-maxage", 30)),
		api("1.2.18", []string{"Master-07"}, "10 audit log files are kept", "--audit-log-maxbackup=10", atLeast("audit-log-maxbackup", 10)),
		api("1.2.19", []string{"Master-07"}, "audit log files rotate at 100 MB", "--audit-log-maxsize=100", atLeast("audit-log-maxsize", 100)),
		api("1.2.21", []string{"Master-01"}, "service account tokens are checked against etcd", "--service-account-lookup=true", eq("service-account-lookup", "true", "true")),
		api("1.2.22", []string{"Master-08"}, "service account tokens are verified with a key file", "--service-account-key-file", set("service-account-key-file")),
		api("1.2.23", []string{"Master-11"}, "the API server authenticates to etcd with a certificate", "--etcd-certfile and --etcd-keyfile", set("etcd-certfile", "etcd-keyfile")),
		api("1.2.24", []string{"Master-06"}, "the API server serves TLS with its own certificate", "--tls-cert-file and --tls-private-key-file", set("tls-cert-file", "tls-private-key-file")),
		api("1.2.25", []string{"Master-06"}, "client certificates are verified", "--client-ca-file", set("client-ca-file")),
		api("1.2.26", []string{"Master-11"}, "etcd's certificate is verified", "--etcd-cafile", set("etcd-cafile")),
		api("1.2.27", []string{"Master-10"}, "Secrets are encrypted at rest", "--encryption-provider-config with aescbc, aesgcm, secretbox or kms", set("encryption-provider-config")),
		api("1.2.29", []string{"Master-06"}, "only strong TLS ciphers", "--tls-cipher-suites with AEAD suites only", ciphers("tls-cipher-suites")),
		api("1.2.30", nil, "service account tokens are not extended", "--service-account-extend-token-expiration=false", eq("service-account-extend-token-expiration", "false", "true")))

	add(controllerChecks()...)

	// 2 etcd.
	etcd := func(id, title, fix string, test func(f map[string]string) (bool, string)) Check {
		return Check{ID: id, KISA: []string{"Master-11"}, Title: title, Fix: fix, Run: flags("etcd", test)}
	}
	add(etcd("2.1", "etcd serves TLS", "--cert-file and --key-file", set("cert-file", "key-file")),
		etcd("2.2", "etcd requires client certificates", "--client-cert-auth=true", eq("client-cert-auth", "true", "false")),
		etcd("2.3", "etcd does not use self-signed auto TLS", "--auto-tls=false", eq("auto-tls", "false", "false")),
		etcd("2.4", "etcd peers use TLS", "--peer-cert-file and --peer-key-file", set("peer-cert-file", "peer-key-file")),
		etcd("2.5", "etcd peers require client certificates", "--peer-client-cert-auth=true", eq("peer-client-cert-auth", "true", "false")),
		etcd("2.6", "etcd peers do not use auto TLS", "--peer-auto-tls=false", eq("peer-auto-tls", "false", "false")),
		Check{ID: "2.7", KISA: []string{"Master-11"}, Title: "etcd has a CA of its own, not the cluster's",
			Fix: "issue etcd's certificates from a separate CA (--trusted-ca-file)", Run: uniqueEtcdCA})

	// 4.1 worker files. KISA Worker-05/06 accept <= 644; the checks hold to CIS.
	kubeletFile := func(p func(Paths) string) func(*Node) string { return func(n *Node) string { return p(n.Paths) } }
	service := kubeletFile(func(p Paths) string { return p.KubeletService })
	kubeconfig := kubeletFile(func(p Paths) string { return p.KubeletKubeconfig })
	config := kubeletFile(func(p Paths) string { return p.KubeletConfig })
	clientCA := func(n *Node) string {
		v, _ := n.kubeletValue("authentication.x509.clientCAFile")
		s, _ := v.(string)
		return s
	}
	add(Check{ID: "4.1.1", KISA: []string{"Worker-05"}, Title: "kubelet service file permissions are 600 or stricter", Fix: "chmod 600 the kubelet unit drop-in", Run: perm(service, 0o600)},
		Check{ID: "4.1.2", KISA: []string{"Worker-05"}, Title: "kubelet service file is owned by root:root", Fix: "chown root:root the kubelet unit drop-in", Run: owner(service, 0, 0)},
		Check{ID: "4.1.5", KISA: []string{"Worker-05"}, Title: "kubelet kubeconfig permissions are 600 or stricter", Fix: "chmod 600 kubelet.conf", Run: perm(kubeconfig, 0o600)},
		Check{ID: "4.1.6", KISA: []string{"Worker-05"}, Title: "kubelet kubeconfig is owned by root:root", Fix: "chown root:root kubelet.conf", Run: owner(kubeconfig, 0, 0)},
		Check{ID: "4.1.7", KISA: []string{"Worker-06"}, Title: "the kubelet's client CA file permissions are 600 or stricter", Fix: "chmod 600 the client CA file", Run: perm(clientCA, 0o600)},
		Check{ID: "4.1.8", KISA: []string{"Worker-06"}, Title: "the kubelet's client CA file is owned by root:root", Fix: "chown root:root the client CA file", Run: owner(clientCA, 0, 0)},
		Check{ID: "4.1.9", KISA: []string{"Worker-05"}, Title: "kubelet config file permissions are 600 or stricter", Fix: "chmod 600 the kubelet config file", Run: perm(config, 0o600)},
		Check{ID: "4.1.10", KISA: []string{"Worker-05"}, Title: "kubelet config file is owned by root:root", Fix: "chown root:root the kubelet config file", Run: owner(config, 0, 0)})

	// 4.2 kubelet, against KubeletConfiguration v1beta1 (an unset field means its default).
	kub := func(id string, kisa []string, title, fix string, test func(n *Node) (bool, string)) Check {
		return Check{ID: id, KISA: kisa, Title: title, Fix: fix, Run: kubelet(test)}
	}
	add(kub("4.2.1", []string{"Worker-01"}, "the kubelet refuses anonymous requests", "authentication.anonymous.enabled: false", field("authentication.anonymous.enabled", false, false)),
		kub("4.2.2", []string{"Worker-02"}, "the kubelet authorizes requests (Webhook)", "authorization.mode: Webhook", field("authorization.mode", "Webhook", "Webhook")),
		kub("4.2.3", []string{"Worker-03"}, "the kubelet verifies client certificates", "authentication.x509.clientCAFile", fieldSet("authentication.x509.clientCAFile")),
		kub("4.2.4", []string{"Worker-01"}, "the read-only port is closed", "readOnlyPort: 0", field("readOnlyPort", 0, 0)),
		kub("4.2.5", nil, "idle streaming connections time out", "streamingConnectionIdleTimeout: 4h (not 0)", fieldNot("streamingConnectionIdleTimeout", "0", "0s")),
		kub("4.2.6", nil, "the kubelet manages iptables chains", "makeIPTablesUtilChains: true", field("makeIPTablesUtilChains", true, true)),
		kub("4.2.7", nil, "the kubelet keeps the host's name", "remove --hostname-override from the kubelet's command line", hostnameKept),
		kub("4.2.9", []string{"Worker-03"}, "the kubelet serves TLS with a certificate", "tlsCertFile and tlsPrivateKeyFile, or serverTLSBootstrap: true", servingCert),
		kub("4.2.10", []string{"Worker-03"}, "client certificates rotate", "rotateCertificates: true", field("rotateCertificates", true, false)),
		kub("4.2.11", []string{"Worker-03"}, "serving certificates rotate", "serverTLSBootstrap: true (and approve the CSRs)", serverRotation),
		kub("4.2.12", []string{"Worker-03"}, "only strong TLS ciphers", "tlsCipherSuites with AEAD suites only", kubeletCiphers),
		kub("4.2.13", nil, "pods have a PID limit", "podPidsLimit: e.g. 4096", positive("podPidsLimit")),
		kub("4.2.14", nil, "RuntimeDefault seccomp for every pod", "seccompDefault: true", field("seccompDefault", true, false)),
		kub("KISA-W04", []string{"Worker-04"}, "the kubelet protects kernel defaults (KISA only; not in CIS 1.12)", "protectKernelDefaults: true", field("protectKernelDefaults", true, false)))
	return cs
}

func etcdDataDir(n *Node) string {
	if f := n.flags["etcd"]; f != nil {
		if d := f["data-dir"]; d != "" {
			return d
		}
	}
	return ""
}

// fileCheck judges the file at path (empty, or missing: not on this node, Skip).
func fileCheck(path func(*Node) string, judge func(p string, fi fileInfo) (bool, string)) func(*Node) (Status, string) {
	return func(n *Node) (Status, string) {
		p := path(n)
		fi, err := n.stat(p)
		switch {
		case p == "" || (err == nil && !fi.exists):
			return Skip, "not on this node"
		case err != nil:
			return Warn, err.Error()
		}
		ok, detail := judge(p, fi)
		if !ok {
			return Fail, detail
		}
		return Pass, detail
	}
}

// perm: the file at path has no permission bits beyond max.
func perm(path func(*Node) string, max os.FileMode) func(*Node) (Status, string) {
	return fileCheck(path, func(p string, fi fileInfo) (bool, string) {
		return fi.mode&^max == 0, fmt.Sprintf("%s is %04o", p, fi.mode)
	})
}

// owner: the file at path is owned by uid:gid.
func owner(path func(*Node) string, uid, gid uint32) func(*Node) (Status, string) {
	return fileCheck(path, func(p string, fi fileInfo) (bool, string) {
		return fi.uid == uid && fi.gid == gid, fmt.Sprintf("%s is owned by %d:%d", p, fi.uid, fi.gid)
	})
}

// ownerName: the file is owned by the named user (and its group), looked up on the node.
func ownerName(path func(*Node) string, user string) func(*Node) (Status, string) {
	return func(n *Node) (Status, string) {
		if path(n) == "" {
			return Skip, "not on this node"
		}
		uid, gid, ok := lookupUser(n.path("/etc/passwd"), user)
		if !ok {
			return Fail, fmt.Sprintf("no %q user on the node: etcd runs as root", user)
		}
		return owner(path, uid, gid)(n)
	}
}

func lookupUser(passwd, user string) (uid, gid uint32, ok bool) {
	b, err := os.ReadFile(passwd)
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 3 && f[0] == user {
			u, err1 := strconv.ParseUint(f[2], 10, 32)
			g, err2 := strconv.ParseUint(f[3], 10, 32)
			return uint32(u), uint32(g), err1 == nil && err2 == nil
		}
	}
	return 0, 0, false
}

// pkiFiles checks every file of the PKI directory with suffix: permissions within max, or
// (ownerOnly) root ownership.
func pkiFiles(suffix string, max os.FileMode, ownerOnly bool) func(*Node) (Status, string) {
	return func(n *Node) (Status, string) {
		entries, err := os.ReadDir(n.path(n.Paths.PKI))
		if os.IsNotExist(err) {
			return Skip, "not on this node"
		}
		if err != nil {
			return Warn, err.Error()
		}
		var bad []string
		checked := 0
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), suffix) {
				continue
			}
			p := filepath.Join(n.Paths.PKI, e.Name())
			check := perm(func(*Node) string { return p }, max)
			if ownerOnly {
				check = owner(func(*Node) string { return p }, 0, 0)
			}
			checked++
			if s, d := check(n); s == Fail {
				bad = append(bad, d)
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			return Fail, strings.Join(bad, "; ")
		}
		return Pass, fmt.Sprintf("%d files", checked)
	}
}

// flags runs test on a component's flags; Skip where the component has no manifest here.
func flags(component string, test func(map[string]string) (bool, string)) func(*Node) (Status, string) {
	return func(n *Node) (Status, string) {
		f := n.flags[component]
		if f == nil {
			return Skip, "no " + component + " on this node"
		}
		if ok, detail := test(f); !ok {
			return Fail, detail
		}
		return Pass, ""
	}
}

// eq: flag equals want; unset counts as def (the component's default).
func eq(name, want, def string) func(map[string]string) (bool, string) {
	return func(f map[string]string) (bool, string) {
		v, ok := f[name]
		if !ok {
			v = def
		}
		return v == want, fmt.Sprintf("--%s=%s", name, v)
	}
}

func set(names ...string) func(map[string]string) (bool, string) {
	return func(f map[string]string) (bool, string) {
		for _, name := range names {
			if f[name] == "" {
				return false, "--" + name + " is not set"
			}
		}
		return true, ""
	}
}

func absent(name string) func(map[string]string) (bool, string) {
	return func(f map[string]string) (bool, string) {
		_, ok := f[name]
		return !ok, "--" + name + " is set"
	}
}

// listHas/listLacks: a comma-separated flag (unset: def) has or lacks item.
func listHas(name, item, def string) func(map[string]string) (bool, string) {
	return func(f map[string]string) (bool, string) {
		v, ok := f[name]
		if !ok {
			v = def
		}
		for _, x := range strings.Split(v, ",") {
			if x == item {
				return true, ""
			}
		}
		return false, fmt.Sprintf("--%s=%s lacks %s", name, v, item)
	}
}

func listLacks(name, item, def string) func(map[string]string) (bool, string) {
	return func(f map[string]string) (bool, string) {
		ok, _ := listHas(name, item, def)(f)
		return !ok, fmt.Sprintf("--%s includes %s", name, item)
	}
}

func atLeast(name string, min int) func(map[string]string) (bool, string) {
	return func(f map[string]string) (bool, string) {
		v, err := strconv.Atoi(f[name])
		return err == nil && v >= min, fmt.Sprintf("--%s=%s (want >= %d)", name, f[name], min)
	}
}

func ciphers(name string) func(map[string]string) (bool, string) {
	return func(f map[string]string) (bool, string) {
		if f[name] == "" {
			return false, "--" + name + " is not set (Go's defaults include CBC suites)"
		}
		return strongOnly(strings.Split(f[name], ","))
	}
}

func strongOnly(suites []string) (bool, string) {
	for _, s := range suites {
		if !slices.Contains(strongCiphers, strings.TrimSpace(s)) {
			return false, "weak cipher suite " + s
		}
	}
	return true, ""
}

func uniqueEtcdCA(n *Node) (Status, string) {
	e, a := n.flags["etcd"], n.flags["kube-apiserver"]
	if e == nil {
		return Skip, "no etcd on this node"
	}
	if e["trusted-ca-file"] == "" {
		return Fail, "--trusted-ca-file is not set"
	}
	if a != nil && a["client-ca-file"] == e["trusted-ca-file"] {
		return Fail, "etcd trusts the cluster CA " + e["trusted-ca-file"]
	}
	return Pass, ""
}

// kubelet runs test on the kubelet configuration; Skip on nodes without one.
func kubelet(test func(*Node) (bool, string)) func(*Node) (Status, string) {
	return func(n *Node) (Status, string) {
		if n.kubelet == nil {
			return Skip, "no kubelet configuration at " + n.Paths.KubeletConfig
		}
		if ok, detail := test(n); !ok {
			return Fail, detail
		}
		return Pass, ""
	}
}

// field: a kubelet field equals want; unset counts as def (KubeletConfiguration v1beta1 default).
func field(path string, want, def any) func(*Node) (bool, string) {
	return func(n *Node) (bool, string) {
		v, ok := n.kubeletValue(path)
		if !ok {
			v = def
		}
		return fmt.Sprint(v) == fmt.Sprint(want), n.describe(path, v)
	}
}

func fieldNot(path string, bad ...string) func(*Node) (bool, string) {
	return func(n *Node) (bool, string) {
		v, ok := n.kubeletValue(path)
		return !ok || !slices.Contains(bad, fmt.Sprint(v)), n.describe(path, v)
	}
}

func fieldSet(path string) func(*Node) (bool, string) {
	return func(n *Node) (bool, string) {
		v, ok := n.kubeletValue(path)
		return ok && fmt.Sprint(v) != "", path + " is not set"
	}
}

func positive(path string) func(*Node) (bool, string) {
	return func(n *Node) (bool, string) {
		v, _ := n.kubeletValue(path)
		i, err := strconv.Atoi(fmt.Sprint(v))
		return err == nil && i > 0, n.describe(path, v)
	}
}

func servingCert(n *Node) (bool, string) {
	if v, _ := n.kubeletValue("serverTLSBootstrap"); v == true {
		return true, ""
	}
	c, _ := n.kubeletValue("tlsCertFile")
	k, _ := n.kubeletValue("tlsPrivateKeyFile")
	return c != nil && k != nil, "neither serverTLSBootstrap nor tlsCertFile/tlsPrivateKeyFile"
}

func serverRotation(n *Node) (bool, string) {
	if v, _ := n.kubeletValue("serverTLSBootstrap"); v == true {
		return true, ""
	}
	g, _ := n.kubeletValue("featureGates.RotateKubeletServerCertificate")
	return g == true, "serverTLSBootstrap is not true"
}

func kubeletCiphers(n *Node) (bool, string) {
	v, ok := n.kubeletValue("tlsCipherSuites")
	list, _ := v.([]any)
	if !ok || len(list) == 0 {
		return false, "tlsCipherSuites is not set (Go's defaults include CBC suites)"
	}
	var suites []string
	for _, s := range list {
		suites = append(suites, fmt.Sprint(s))
	}
	ok, detail := strongOnly(suites)
	if src, set := n.flagSource["tlsCipherSuites"]; set && !ok {
		detail += " (from " + src + ")"
	}
	return ok, detail
}
