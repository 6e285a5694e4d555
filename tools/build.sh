#!/usr/bin/env bash
# Builds kplane's toolchain from Go modules, once per machine and version, into a cache
# (KPLANE_CACHE, default ~/.cache/kplane) that survives across clones, CI runs and sessions.
#
#   tools/build.sh [tool...]     tools: pulumi kubernetes-provider kcp kwok plugins (default: all)
#
# Every tool lands in $KPLANE_CACHE/<tool>-<version>/bin only after its build succeeded and the
# binary answered a smoke check; a missing or corrupt binary is rebuilt, never used.
set -euo pipefail

. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
export GOFLAGS=-mod=mod
mkdir -p "$CACHE"

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# moddir MODULE@VERSION -> the module's directory in the Go module cache (downloads it).
moddir() {
  (cd "$CACHE" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

# copymod MODULE@VERSION DEST -> a writable copy of a module (for builds that replace ../sibling).
copymod() {
  local dir; dir=$(moddir "$1")
  [ -n "$dir" ] || { log "cannot download $1 from the Go module proxy"; exit 1; }
  rm -rf "$2"; cp -r "$dir" "$2"; chmod -R u+w "$2"
}

# ready NAME VERSION BIN CHECK... -> true when the cached binary exists and its smoke check passes.
ready() {
  local bin="$CACHE/$1-$2/bin/$3"; shift 3
  [ -x "$bin" ] && "$bin" "$@" >/dev/null 2>&1
}

# install NAME VERSION SRC_BIN... -> moves built binaries into the cache atomically.
install_tool() {
  local name=$1 version=$2; shift 2
  local dest="$CACHE/$name-$version" tmp="$CACHE/.$name-$version.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp/bin"
  cp "$@" "$tmp/bin/"
  rm -rf "$dest"; mv "$tmp" "$dest"
}

timed() { # timed NAME cmd... -> runs a build step, logging its wall time
  local start=$SECONDS; "${@:2}"; log "$1 built in $((SECONDS - start)) s"
  echo "$1 $((SECONDS - start))" >>"$CACHE/build-times.log"
}

build_pulumi() {
  if ready pulumi "$PULUMI_VERSION" pulumi version; then log "pulumi $PULUMI_VERSION cached"; return; fi
  log "building pulumi $PULUMI_VERSION from github.com/pulumi/pulumi/pkg/v3 (cold: ~10-15 min)"
  local w="$CACHE/src/pulumi-$PULUMI_VERSION"; mkdir -p "$w"
  copymod "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" "$w/pkg"
  copymod "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" "$w/sdk"
  (cd "$w/pkg" && go build -o "$w/pulumi" \
     -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" ./cmd/pulumi)
  install_tool pulumi "$PULUMI_VERSION" "$w/pulumi"
  rm -rf "$w"
}

build_kubernetes_provider() {
  local v=$K8S_PROVIDER_VERSION
  if ready pulumi-resource-kubernetes "$v" pulumi-resource-kubernetes -version; then log "kubernetes provider $v cached"; return; fi
  log "building pulumi-resource-kubernetes $v (cold: ~20-30 min, compiles the generated Kubernetes SDK)"
  local w="$CACHE/src/pulumi-kubernetes-$v"; mkdir -p "$w"
  copymod "github.com/pulumi/pulumi-kubernetes/provider/v4@$K8S_PROVIDER_MODULE" "$w/provider"
  copymod "github.com/pulumi/pulumi-kubernetes/sdk/v4@v$v" "$w/sdk"
  (cd "$w/provider/cmd/pulumi-resource-kubernetes" && VERSION=$v go run ./generate.go)
  (cd "$w/provider" && go build -o "$w/pulumi-resource-kubernetes" \
     -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$v" ./cmd/pulumi-resource-kubernetes)
  install_tool pulumi-resource-kubernetes "$v" "$w/pulumi-resource-kubernetes"
  rm -rf "$w"
}

# install_plugins registers the built providers in PULUMI_HOME, where the engine looks for them
# (plugin downloads are impossible offline and disabled).
install_plugins() {
  local v=$K8S_PROVIDER_VERSION bin="$CACHE/pulumi-resource-kubernetes-$K8S_PROVIDER_VERSION/bin/pulumi-resource-kubernetes"
  local dest="$PULUMI_HOME/plugins/resource-kubernetes-v$v/pulumi-resource-kubernetes"
  if [ -x "$dest" ] && cmp -s "$bin" "$dest"; then return; fi
  "$CACHE/pulumi-$PULUMI_VERSION/bin/pulumi" plugin install resource kubernetes "v$v" --file "$bin" --reinstall >&2
  log "installed provider kubernetes v$v into $PULUMI_HOME"
}

build_kcp() {
  local key; key=$(kcp_key)
  if ready kcp "$key" kcp --version; then log "kcp (Kubernetes $KUBERNETES_VERSION) cached"; return; fi
  log "building kcp: etcd + kube-apiserver + controller-manager + scheduler $KUBERNETES_VERSION (cold: ~15-25 min)"
  local w="$CACHE/src/kcp-$KUBERNETES_VERSION"; mkdir -p "$w"
  (cd "$here/kcp" && go build -o "$w/kcp" \
     -ldflags "-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)" .)
  install_tool kcp "$key" "$w/kcp"
  rm -rf "$w"
}

# The standalone kwok binary has no built-in stages (kwokctl injects them): collect kwokctl's
# defaults (fast node init, lease heartbeat, fast pod ready/complete/delete) from the module.
build_kwok() {
  if ready kwok "$KWOK_VERSION" kwok --version && [ -s "$CACHE/kwok-$KWOK_VERSION/bin/kwok-stages.yaml" ]; then
    log "kwok $KWOK_VERSION cached"; return
  fi
  log "building kwok $KWOK_VERSION (cold: ~3-5 min)"
  local w="$CACHE/src/kwok-$KWOK_VERSION" stage; mkdir -p "$w"
  (cd "$CACHE" && GOBIN="$w" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")
  stage="$(moddir "sigs.k8s.io/kwok@$KWOK_VERSION")/kustomize/stage"
  : >"$w/kwok-stages.yaml"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$stage/$f"; } >>"$w/kwok-stages.yaml"
  done
  install_tool kwok "$KWOK_VERSION" "$w/kwok" "$w/kwok-stages.yaml"
  rm -rf "$w"
}

tools=("$@"); [ ${#tools[@]} -gt 0 ] || tools=(pulumi kubernetes-provider kcp kwok plugins)
for t in "${tools[@]}"; do
  case $t in
    pulumi) timed pulumi build_pulumi ;;
    kubernetes-provider) timed kubernetes-provider build_kubernetes_provider ;;
    kcp) timed kcp build_kcp ;;
    kwok) timed kwok build_kwok ;;
    plugins) install_plugins ;;
    *) log "unknown tool '$t' (known: pulumi kubernetes-provider kcp kwok plugins)"; exit 2 ;;
  esac
done
