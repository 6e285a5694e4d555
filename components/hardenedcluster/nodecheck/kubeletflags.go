package nodecheck

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// kubeletFlagFields are the kubelet flags that set a checked configuration field: on the
// command line they override the configuration file (kubeadm puts its flags in
// /var/lib/kubelet/kubeadm-flags.env, distributions add theirs in /etc/default/kubelet).
var kubeletFlagFields = map[string]string{
	"anonymous-auth":                    "authentication.anonymous.enabled",
	"authorization-mode":                "authorization.mode",
	"client-ca-file":                    "authentication.x509.clientCAFile",
	"read-only-port":                    "readOnlyPort",
	"streaming-connection-idle-timeout": "streamingConnectionIdleTimeout",
	"make-iptables-util-chains":         "makeIPTablesUtilChains",
	"tls-cert-file":                     "tlsCertFile",
	"tls-private-key-file":              "tlsPrivateKeyFile",
	"rotate-certificates":               "rotateCertificates",
	"rotate-server-certificates":        "serverTLSBootstrap",
	"tls-cipher-suites":                 "tlsCipherSuites",
	"pod-max-pids":                      "podPidsLimit",
	"seccomp-default":                   "seccompDefault",
	"protect-kernel-defaults":           "protectKernelDefaults",
	"feature-gates":                     "featureGates",
}

// kubeletCommandLine is the kubelet's command line as systemd starts it: the unit's drop-ins
// (every *.conf beside Paths.KubeletService, in name order; an empty ExecStart= resets, the last
// one wins), its variables expanded from their Environment= lines and EnvironmentFile= files.
// The files it read are returned too; none: no drop-ins here.
func (n *Node) kubeletCommandLine() ([]string, []string) {
	dropins, _ := filepath.Glob(n.path(filepath.Join(filepath.Dir(n.Paths.KubeletService), "*.conf")))
	sort.Strings(dropins)
	env := map[string]string{}
	var exec string
	var read []string
	for _, f := range dropins {
		lines, err := readLines(f)
		if err != nil {
			continue
		}
		read = append(read, strings.TrimPrefix(f, n.Root))
		for _, line := range lines {
			key, value, ok := strings.Cut(line, "=")
			switch {
			case !ok:
			case key == "Environment":
				for _, assignment := range unitWords(value) {
					if k, v, ok := strings.Cut(assignment, "="); ok {
						env[k] = v
					}
				}
			case key == "EnvironmentFile":
				file := strings.TrimPrefix(value, "-") // "-": optional
				if vars, err := readLines(n.path(file)); err == nil {
					read = append(read, file)
					for _, l := range vars {
						if k, v, ok := strings.Cut(l, "="); ok {
							env[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
						}
					}
				}
			case key == "ExecStart":
				exec = value // "" resets what an earlier file set
			}
		}
	}
	expanded := unitVar.ReplaceAllStringFunc(exec, func(v string) string { return env[strings.Trim(v, "${}")] })
	return unitWords(expanded), read
}

var unitVar = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// unitWords splits a systemd value into words, honouring double quotes.
func unitWords(s string) []string {
	var words []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if l := strings.TrimSpace(s.Text()); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines, s.Err()
}

// applyKubeletFlags lays the kubelet's flags over its configuration (flags win), remembering
// which fields came from a flag, so a finding names where to fix it.
func (n *Node) applyKubeletFlags(flags map[string]string, files []string) {
	for flag, path := range kubeletFlagFields {
		raw, ok := flags[flag]
		if !ok {
			continue
		}
		if n.kubelet == nil {
			n.kubelet = map[string]any{}
		}
		var value any = raw
		switch flag {
		case "tls-cipher-suites":
			var list []any
			for _, s := range strings.Split(raw, ",") {
				list = append(list, strings.TrimSpace(s))
			}
			value = list
		case "feature-gates":
			gates := map[string]any{}
			for _, g := range strings.Split(raw, ",") {
				k, v, _ := strings.Cut(g, "=")
				gates[strings.TrimSpace(k)] = strings.TrimSpace(v) == "true"
			}
			value = gates
		}
		setPath(n.kubelet, path, value)
		n.flagSource[path] = "--" + flag + " on the kubelet's command line (" + strings.Join(files, ", ") + "), which overrides the configuration file"
	}
}

func setPath(m map[string]any, path string, value any) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = value
}

// describe is a field's value for a finding, with the flag that set it if one did.
func (n *Node) describe(path string, v any) string {
	if src, ok := n.flagSource[path]; ok {
		return fmt.Sprintf("%s: %v (from %s)", path, v, src)
	}
	return fmt.Sprintf("%s: %v", path, v)
}

// hostnameKept: CIS 4.2.7, no --hostname-override (a node named apart from its host breaks the
// TLS between the API server and the kubelet). A flag only: KubeletConfiguration has no field.
func hostnameKept(n *Node) (bool, string) {
	if v, ok := n.cmdline["hostname-override"]; ok {
		return false, "--hostname-override=" + v + " on the kubelet's command line"
	}
	return true, ""
}
