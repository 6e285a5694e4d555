package hardenedcluster

// AuditPolicy is the API server audit policy of a hardened cluster (CIS 3.2.1/3.2.2, KISA
// Master-07, ISMS-P 2.9.4): who read or changed Secrets, ConfigMaps and tokens (metadata only,
// never the values), every change with its request, RBAC, admission and CRD changes with their
// responses; health probes, leases and event reads are dropped. Give it to the API server with
// --audit-policy-file (kubeadm: apiServer.extraArgs and extraVolumes; the test bed does this),
// together with --audit-log-path and maxage 30, maxbackup 10, maxsize 100 (CIS 1.2.16-1.2.19).
// Managed control planes set their own policy; there the output documents the expectation.
func AuditPolicy() string {
	return `apiVersion: audit.k8s.io/v1
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
}
