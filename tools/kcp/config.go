package main

import (
	"crypto/rand"
	"encoding/base64"
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

// auditPolicy covers the key concerns of CIS 3.2.1/3.2.2 and KISA Master-07: who read or changed
// secrets (metadata only, never the values), every change with its request, RBAC and
// authentication changes with their responses; health probes and read-only noise are dropped.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/openapi*"]
  - level: None
    resources:
      - group: coordination.k8s.io
        resources: [leases]
  - level: None
    verbs: [get, list, watch]
    resources:
      - group: ""
        resources: [events]
      - group: events.k8s.io
        resources: [events]
  - level: Metadata
    resources:
      - group: ""
        resources: [secrets, configmaps, serviceaccounts/token]
      - group: authentication.k8s.io
        resources: [tokenreviews]
  - level: RequestResponse
    resources:
      - group: rbac.authorization.k8s.io
      - group: admissionregistration.k8s.io
      - group: apiextensions.k8s.io
  - level: Request
    verbs: [create, update, patch, delete, deletecollection]
  - level: Metadata
`

func writeAuditPolicy(dir string) (string, error) {
	path := filepath.Join(dir, "audit-policy.yaml")
	return path, writeFile(path, []byte(auditPolicy), 0o600)
}

// kubeconfig writes a client-certificate kubeconfig for one identity of the PKI.
func kubeconfig(path, cluster, server string, p pki, user string) error {
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
      certificate-authority-data: %[3]s
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
`, cluster, server, ca, user, crt, key)
	return writeFile(path, []byte(cfg), 0o600)
}
