#!/usr/bin/env bash
# Assembles a release of the version in Cargo.toml in dist/release/<version>/:
#
#   envoy_appinsights-<version>.wasm               the module (scripts/build.sh)
#   envoy_appinsights-<version>.wasm.sha256        its sha256, as `sha256sum -c` reads it
#   envoy_appinsights-<version>-image-compat.tar   the OCI image layout, compat variant (Istio's default)
#   envoy_appinsights-<version>-image-oci.tar      the OCI image layout, oci (artifact) variant
#   envoy.yaml                                     the Envoy configuration docker-compose runs (the
#                                                  renderer's output, pinned by the test suite)
#   istio-appinsights.yaml                         the Istio manifest, its WasmPlugin url naming this
#                                                  version's image and `sha256` its manifest digest
#   CHANGELOG-<version>.md                         this version's section of CHANGELOG.md
#
#   IMAGE        the image repository the Istio manifest names (default registry.example.com/envoy-appinsights)
#   RELEASE_DIR  where to write (default dist/release/<version>; emptied first)
#   SKIP_BUILD=1 package dist/envoy_appinsights.wasm as it is (or WASM=<path>)
#
# The version must be SemVer and have its own section in CHANGELOG.md. Push the image with
# scripts/package.sh push (it prints the digest the manifest already names).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

version="$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "Cargo.toml's version $version is not SemVer"
grep -q "^## \[$version\]" CHANGELOG.md || die "CHANGELOG.md has no section ## [$version]: write it first"
image="${IMAGE:-registry.example.com/envoy-appinsights}"
out="${RELEASE_DIR:-dist/release/$version}"
wasm="${WASM:-dist/envoy_appinsights.wasm}"

if [ "${SKIP_BUILD:-}" != 1 ]; then scripts/build.sh; fi
[ -f "$wasm" ] || die "$wasm is missing: run scripts/build.sh"

step "release $version in $out"
rm -rf "$out"
mkdir -p "$out"
name="envoy_appinsights-$version"
install -m 0644 "$wasm" "$out/$name.wasm"
(cd "$out" && sha256sum "$name.wasm" > "$name.wasm.sha256")

images="$(mktemp -d)"
trap 'rm -rf "$images"' EXIT
python3 scripts/oci.py build --wasm "$wasm" --out "$images" --version "$version" >&2
for variant in compat oci; do
  cp "$images/$name-image-$variant.tar" "$out/"
done
digest="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$images/compat/index.json")"

cp envoy/envoy.yaml "$out/envoy.yaml"

# The WasmPlugin: url names this version's image, sha256 is its manifest digest (for oci:// urls
# Istio compares sha256 with the image's manifest digest, not with the module's bytes).
python3 - envoy/istio/appinsights.yaml "$out/istio-appinsights.yaml" "oci://$image:$version" "${digest#sha256:}" <<'EOF'
import re, sys
src, dst, url, sha = sys.argv[1:]
lines, out, seen = open(src).read().splitlines(), [], 0
for line in lines:
    if re.match(r"\s*sha256:", line):
        continue  # replaced below, after the url
    m = re.match(r"(\s*)url:\s*oci://", line)
    if m:
        out += [f"{m.group(1)}url: {url}", f"{m.group(1)}sha256: {sha}"]
        seen += 1
    else:
        out.append(line)
if seen != 1:
    sys.exit(f"error: {src} has {seen} oci:// url lines, expected one")
open(dst, "w").write("\n".join(out) + "\n")
EOF

python3 - "$version" "$out/CHANGELOG-$version.md" <<'EOF'
import sys
version, dst = sys.argv[1:]
text, keep, section = open("CHANGELOG.md").read().splitlines(), False, []
for line in text:
    if line.startswith("## ["):
        keep = line.startswith(f"## [{version}]")
    if keep:
        section.append(line)
open(dst, "w").write("\n".join(section).strip() + "\n")
EOF

ok "dist: $(cd "$out" && ls | tr '\n' ' ')"
printf 'version  %s\nmodule   sha256:%s  %s\nimage    %s  (compat; WasmPlugin sha256 %s)\n' \
  "$version" "$(cut -d' ' -f1 "$out/$name.wasm.sha256")" "$out/$name.wasm" "$digest" "${digest#sha256:}"
printf 'push     scripts/package.sh push %s:%s --layout %s\n' "$image" "$version" "$out/$name-image-compat.tar"
