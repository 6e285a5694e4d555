# Shared by build.sh and env.sh: where kplane's tool cache is and how its entries are keyed.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/versions.sh"
CACHE=${KPLANE_CACHE:-$HOME/.cache/kplane}
export PULUMI_HOME=${PULUMI_HOME:-$CACHE/pulumi-home}

# kcp is our own source: its cache key is the Kubernetes version plus a hash of that source.
kcp_key() { echo "$KUBERNETES_VERSION-$(cat "$here"/kcp/*.go "$here"/kcp/kubectl/*.go "$here"/kcp/go.mod "$here"/kcp/go.sum | sha256sum | cut -c1-12)"; }

# node_key: the real-pod node's runtime (containerd, runc, CNI plugins) with the kubelet and
# kube-proxy of kcp's Kubernetes release (built with kcp's module requirements, not its source).
node_key() { echo "$KUBERNETES_VERSION-$(cat "$here"/kcp/go.mod "$here"/kcp/go.sum | sha256sum | cut -c1-8)-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION-cni-$CNI_PLUGINS_VERSION-coredns-$COREDNS_VERSION"; }

# images_key: the static binaries of the upstream images the real-pod bed runs (tools/build.sh images).
images_key() { echo "2-velero-$VELERO_VERSION-aws-$VELERO_AWS_VERSION-istio-${ISTIO_VERSION##*-}-gatekeeper-$GATEKEEPER_VERSION-$(go env GOVERSION)"; }

# bindirs: the cache folders whose bin/ go on PATH (providers are found in PULUMI_HOME, not PATH).
bindirs() {
  echo "$CACHE/pulumi-$PULUMI_VERSION/bin:$CACHE/kcp-$(kcp_key)/bin:$CACHE/kwok-$KWOK_VERSION/bin:$CACHE/gatekeeper-$GATEKEEPER_VERSION/bin:$CACHE/velero-$VELERO_VERSION-aws-$VELERO_AWS_VERSION/bin:$CACHE/seaweedfs-$SEAWEEDFS_VERSION/bin:$CACHE/snapshot-controller-$EXTERNAL_SNAPSHOTTER_VERSION/bin:$CACHE/kube-bench-$KUBE_BENCH_VERSION/bin:$CACHE/istioctl-$ISTIO_VERSION/bin:$CACHE/registry-$DISTRIBUTION_VERSION/bin:$CACHE/cosign-$COSIGN_VERSION/bin:$CACHE/trivy-$TRIVY_VERSION/bin:$CACHE/policy-controller-$POLICY_CONTROLLER_VERSION/bin:$CACHE/argocd-$ARGOCD_VERSION-helm-$HELM_VERSION/bin:$CACHE/keycloak-$KEYCLOAK_VERSION/bin:$CACHE/openbao-$OPENBAO_VERSION/bin:$CACHE/node-$(node_key)/bin"
}

# charts_dir: the folder of unpacked official charts the composed platform installs (kplane:charts).
# (mirror 2: External Secrets' CRDs added as its packaging adds them)
charts_dir() { echo "$CACHE/charts-$(echo "$ISTIO_VERSION $VELERO_CHARTS_VERSION $PROMETHEUS_CHARTS_VERSION $GRAFANA_CHARTS_VERSION $GATEKEEPER_VERSION $EXTERNAL_SECRETS_VERSION mirror-2" | sha256sum | cut -c1-12)"; }
