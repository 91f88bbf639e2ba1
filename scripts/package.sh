#!/usr/bin/env bash
# The filter as an OCI image for Istio's WasmPlugin (url: oci://...), built without Docker.
#
#   scripts/package.sh [build]              dist/envoy_appinsights.wasm -> dist/oci/{compat,oci}/
#                                           (OCI image layouts) and their tarballs; prints the
#                                           module's sha256 and each variant's manifest digest
#   scripts/package.sh push REF [--layout DIR|TAR] [--plain-http]
#                                           pushes a layout (default dist/oci/compat; a release's
#                                           layout tarball works too) through the
#                                           registry HTTP API v2; REF is registry/repository:tag;
#                                           plain HTTP for a loopback registry; no authentication
#   scripts/package.sh pull REF OUT.wasm    the module back, from either variant (REF may be @sha256:...)
#
# Reproducible: the same module and version give the same digests. The compat variant (one
# tar+gzip layer holding plugin.wasm) is the one to push for Istio; the oci variant (a raw
# application/vnd.module.wasm.content.layer.v1+wasm layer) is there for tools that want it.
# Details in scripts/oci.py. Set SKIP_BUILD=1 to package the module already in dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

command -v python3 >/dev/null || die "python3 is required (scripts/setup.sh installs it)"
cmd="${1:-build}"
[ $# -gt 0 ] && shift
case "$cmd" in
  build)
    if [ "${SKIP_BUILD:-}" != 1 ] && [ ! -f dist/envoy_appinsights.wasm ]; then scripts/build.sh; fi
    exec python3 scripts/oci.py build "$@" ;;
  push|pull) exec python3 scripts/oci.py "$cmd" "$@" ;;
  -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command $cmd: build, push or pull (scripts/package.sh --help)" ;;
esac
