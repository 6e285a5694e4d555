#!/usr/bin/env bash
# Prints the shell lines that put kplane's cached tools to use by hand:  eval "$(make -s env)"
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
root=$(cd "$here/.." && pwd)
cat <<ENV
export KPLANE_CACHE="$CACHE"
export KPLANE_CHARTS="$(charts_dir)"
export KPLANE_UPSTREAM_IMAGES="$CACHE/images-$(images_key)/bin"
export KPLANE_SWAGGER_UI="$CACHE/swagger-ui-$SWAGGER_UI_VERSION"
export PATH="$(bindirs):\$PATH"
export PULUMI_HOME="$PULUMI_HOME"
export PULUMI_BACKEND_URL="\${PULUMI_BACKEND_URL:-file://$root/.state/pulumi}"
export PULUMI_CONFIG_PASSPHRASE="\${PULUMI_CONFIG_PASSPHRASE:-$DEV_PASSPHRASE}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
ENV
