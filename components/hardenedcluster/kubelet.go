package hardenedcluster

// KubeletConfiguration is the hardened kubelet configuration of the cluster's nodes (CIS 4.2.x,
// KISA Worker-01..04), for the node pools' bootstrap (kubeadm JoinConfiguration, a managed node
// group's launch template, /var/lib/kubelet/config.yaml). The node checks verify what the nodes
// really run; this is what they are checked against. Serving certificates are bootstrapped and
// rotated (serverTLSBootstrap): approve the kubelets' serving CSRs (kubeadm or a CSR approver).
func KubeletConfiguration() string {
	return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
readOnlyPort: 0
streamingConnectionIdleTimeout: 4h0m0s
makeIPTablesUtilChains: true
eventRecordQPS: 50
rotateCertificates: true
serverTLSBootstrap: true
tlsMinVersion: VersionTLS12
tlsCipherSuites:
  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305
  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305
podPidsLimit: 4096
seccompDefault: true
protectKernelDefaults: true
`
}
