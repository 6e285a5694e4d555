package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// encryptionConfig writes the Secret encryption-at-rest configuration once (CIS 1.2.27/1.2.28,
// KISA Master-10). The key is generated per cluster and never leaves its data directory.
func encryptionConfig(dir string) (string, error) {
	path := filepath.Join(dir, "encryption-config.yaml")
	if exists(path) {
		return path, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: %s
      - identity: {}
`, base64.StdEncoding.EncodeToString(key))
	return path, writeFile(path, []byte(cfg), 0o600)
}

// writeManifest records a component's effective flags as kubeadm would write its static pod
// (manifests/<name>.yaml), so node checks read kcp's settings exactly as a kubeadm node's.
func writeManifest(dir, name string, args []string) error {
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": "kube-system"},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": name, "command": append([]string{name}, args...)}}},
	}
	b, err := json.MarshalIndent(pod, "", "  ") // JSON is YAML
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "manifests"), 0o700); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "manifests", name+".yaml"), b, 0o600)
}

// kubeconfig writes a client-certificate kubeconfig for one identity of the PKI; serverName,
// when set, is the name the API server's certificate is checked for (tls-server-name).
func kubeconfig(path, cluster, server string, p pki, user, serverName string) error {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(p.path(name))
		return base64.StdEncoding.EncodeToString(b), err
	}
	ca, err := read("ca.crt")
	if err != nil {
		return err
	}
	crt, err := read(user + ".crt")
	if err != nil {
		return err
	}
	key, err := read(user + ".key")
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: %[1]s
    cluster:
      server: %[2]s
      certificate-authority-data: %[3]s%[7]s
users:
  - name: %[1]s-%[4]s
    user:
      client-certificate-data: %[5]s
      client-key-data: %[6]s
contexts:
  - name: %[1]s
    context:
      cluster: %[1]s
      user: %[1]s-%[4]s
current-context: %[1]s
`, cluster, server, ca, user, crt, key, tlsServerName(serverName))
	return writeFile(path, []byte(cfg), 0o600)
}

func tlsServerName(name string) string {
	if name == "" {
		return ""
	}
	return "\n      tls-server-name: " + name
}
