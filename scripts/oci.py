#!/usr/bin/env python3
"""The filter as an OCI image, per the Wasm image specification Istio pulls (Python stdlib only).

Two variants of the same module (https://github.com/solo-io/wasm/tree/master/spec):

- compat: an ordinary OCI image whose single layer (application/vnd.oci.image.layer.v1.tar+gzip)
  is a tar holding plugin.wasm, with the manifest annotation module.wasm.image/variant=compat.
  Istio tries this variant first; any registry and any image tool handles it.
- oci: the artifact variant, config application/vnd.module.wasm.config.v1+json and two layers,
  the runtime config and the raw module (application/vnd.module.wasm.content.layer.v1+wasm);
  Istio's fetcher wants exactly these two layers.

Both are written as OCI image layouts (a directory and a tarball of it) that are reproducible:
fixed mtimes, uid/gid 0, no names, gzip without a timestamp, JSON in a fixed order. The same
module and version give the same bytes, hence the same manifest digest, on every build (with
the same zlib: another zlib may compress the layer differently).

Which hash Istio checks: for an oci:// url, WasmPlugin's `sha256` is the image MANIFEST digest
(istio pkg/wasm: PrepareFetch returns the image digest, compared with `sha256`); for an
http(s):// url it is the sha256 of the module bytes. Both are printed.

  oci.py build [--wasm FILE] [--out DIR] [--version V]   layouts and tarballs in DIR (dist/oci)
  oci.py push REF [--layout DIR|TAR] [--plain-http]      registry HTTP API v2 (no auth)
  oci.py pull REF OUT.wasm [--plain-http]                the module back out of either variant
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
VARIANTS = ("compat", "oci")
# What the module exports (proxy-wasm Rust SDK 0.2): the ABI Envoy checks at load.
ABI_VERSION = "proxy_abi_version_0_2_1"


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def canonical(value):
    """JSON as the digest sees it: fixed key order, no whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def cargo_package():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["package"]


def descriptor(media_type, data, title=None):
    d = {"mediaType": media_type, "digest": "sha256:" + sha256(data), "size": len(data)}
    if title:
        d["annotations"] = {"org.opencontainers.image.title": title}
    return d


def reproducible_tar(files):
    """A ustar archive of (name, bytes): mtime 0, root-owned, mode 0644, no user names."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def reproducible_gzip(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def annotations(pkg, variant):
    a = {
        "org.opencontainers.image.title": pkg["name"],
        "org.opencontainers.image.description": pkg["description"],
        "org.opencontainers.image.version": pkg["version"],
        "org.opencontainers.image.licenses": pkg["license"],
    }
    if variant == "compat":
        a["module.wasm.image/variant"] = "compat"
    return a


def image(wasm, pkg, variant):
    """(manifest bytes, {digest: blob}) of one variant."""
    runtime_config = canonical({"type": "envoy_proxy", "abiVersions": [ABI_VERSION], "config": {"root_ids": []}})
    if variant == "compat":
        tar = reproducible_tar([("plugin.wasm", wasm)])
        layer = reproducible_gzip(tar)
        config = canonical({
            "architecture": "wasm",
            "os": "wasip1",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256(tar)]},
        })
        config_desc = descriptor(IMAGE_CONFIG, config)
        layers = [(descriptor(TAR_GZIP, layer), layer)]
    else:
        config = runtime_config
        config_desc = descriptor(WASM_CONFIG, config)
        layers = [
            (descriptor(WASM_CONFIG, runtime_config, "runtime-config.json"), runtime_config),
            (descriptor(WASM_LAYER, wasm, "plugin.wasm"), wasm),
        ]
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config_desc,
        "layers": [d for d, _ in layers],
        "annotations": annotations(pkg, variant),
    })
    blobs = {config_desc["digest"]: config, **{d["digest"]: data for d, data in layers}}
    blobs["sha256:" + sha256(manifest)] = manifest
    return manifest, blobs


def write_layout(directory, manifest, blobs, tag):
    if os.path.exists(directory):
        shutil.rmtree(directory)
    os.makedirs(os.path.join(directory, "blobs", "sha256"))
    for digest, data in blobs.items():
        with open(os.path.join(directory, "blobs", "sha256", digest.split(":", 1)[1]), "wb") as f:
            f.write(data)
    desc = descriptor(MANIFEST, manifest)
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    files = {
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                 "manifests": [desc]}),
    }
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    # The tarball: the layout's files in a fixed order, as `tar -C directory -cf - .` would hold them.
    entries = [(name, data) for name, data in sorted(files.items())]
    entries += [(f"blobs/sha256/{d.split(':', 1)[1]}", data) for d, data in sorted(blobs.items())]
    return reproducible_tar(entries)


def cmd_build(args):
    pkg = cargo_package()
    version = args.version or pkg["version"]
    pkg = {**pkg, "version": version}
    try:
        with open(args.wasm, "rb") as f:
            wasm = f.read()
    except OSError as e:
        die(f"{args.wasm}: {e.strerror}: run scripts/build.sh first")
    if wasm[:4] != b"\0asm":
        die(f"{args.wasm} is not a wasm module")
    print(f"module  sha256:{sha256(wasm)}  {len(wasm)} bytes  {os.path.relpath(args.wasm)}")
    for variant in VARIANTS:
        manifest, blobs = image(wasm, pkg, variant)
        directory = os.path.join(args.out, variant)
        tarball = write_layout(directory, manifest, blobs, version)
        tar_path = os.path.join(args.out, f"envoy_appinsights-{version}-image-{variant}.tar")
        with open(tar_path, "wb") as f:
            f.write(tarball)
        size = sum(len(b) for b in blobs.values())
        print(f"{variant:<7} sha256:{sha256(manifest)}  {size} bytes  {os.path.relpath(directory)}/  {os.path.relpath(tar_path)}")
    print("WasmPlugin sha256: the manifest digest for oci:// urls, the module's sha256 for https:// urls")


def parse_ref(ref):
    """registry, repository, tag or digest; e.g. 127.0.0.1:5000/envoy-appinsights:0.1.0."""
    m = re.fullmatch(r"(?:oci://)?([^/]+)/([a-z0-9][a-z0-9._/-]*?)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?", ref)
    if not m or not (m.group(3) or m.group(4)):
        die(f"{ref!r} is not registry/repository:tag or registry/repository@sha256:<hex>")
    return m.group(1), m.group(2), m.group(4) or m.group(3)


def base_url(registry, plain_http):
    host = registry.rsplit(":", 1)[0].strip("[]")
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    return ("http" if plain_http or loopback else "https") + "://" + registry


def call(method, url, body=None, headers=None, ok=(200,)):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.code, e.headers, e.read()
        die(f"{method} {url}: HTTP {e.code} {e.read()[:500].decode(errors='replace')}")
    except urllib.error.URLError as e:
        die(f"{method} {url}: {e.reason}")


def layout_reader(path):
    """read(name) of a file in an OCI image layout: a directory or a tarball of one."""
    if os.path.isdir(path):
        return lambda name: open(os.path.join(path, name), "rb").read()
    try:
        tar = tarfile.open(path)
    except (OSError, tarfile.TarError) as e:
        die(f"{path} is neither an OCI image layout directory nor a tarball of one: {e}")
    return lambda name: tar.extractfile(name.removeprefix("./")).read()


def cmd_push(args):
    registry, repo, tag = parse_ref(args.ref)
    base = f"{base_url(registry, args.plain_http)}/v2/{repo}"
    read = layout_reader(args.layout)
    manifest_digest = json.loads(read("index.json"))["manifests"][0]["digest"]
    blob = lambda d: read(f"blobs/sha256/{d.split(':', 1)[1]}")
    manifest = blob(manifest_digest)
    parsed = json.loads(manifest)
    for desc in [parsed["config"], *parsed["layers"]]:
        digest = desc["digest"]
        status, _, _ = call("HEAD", f"{base}/blobs/{digest}", ok=(200, 404))
        if status == 200:
            continue
        _, headers, _ = call("POST", f"{base}/blobs/uploads/", body=b"", ok=(202,))
        location = urllib.parse.urljoin(base + "/", headers["Location"])
        sep = "&" if "?" in location else "?"
        call("PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", body=blob(digest),
             headers={"Content-Type": "application/octet-stream"}, ok=(201,))
    _, headers, _ = call("PUT", f"{base}/manifests/{tag}", body=manifest,
                         headers={"Content-Type": parsed["mediaType"]}, ok=(201,))
    answered = headers.get("Docker-Content-Digest")
    if answered and answered != manifest_digest:
        die(f"the registry stored the manifest as {answered}, not {manifest_digest}")
    print(f"pushed {registry}/{repo}:{tag}")
    print(f"digest {manifest_digest}")
    print(f"url    oci://{registry}/{repo}@{manifest_digest}")


def cmd_pull(args):
    registry, repo, ref = parse_ref(args.ref)
    base = f"{base_url(registry, args.plain_http)}/v2/{repo}"
    _, _, manifest = call("GET", f"{base}/manifests/{ref}", headers={"Accept": MANIFEST})
    if ref.startswith("sha256:") and "sha256:" + sha256(manifest) != ref:
        die(f"the manifest's digest is sha256:{sha256(manifest)}, not {ref}")
    parsed = json.loads(manifest)
    layers = parsed["layers"]

    def fetch(desc):
        _, _, data = call("GET", f"{base}/blobs/{desc['digest']}")
        if "sha256:" + sha256(data) != desc["digest"]:
            die(f"blob {desc['digest']} arrived with another digest")
        return data

    wasm_layers = [d for d in layers if d["mediaType"] == WASM_LAYER]
    if wasm_layers:
        wasm = fetch(wasm_layers[0])
    else:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(fetch(layers[-1])))) as tar:
            member = next((m for m in tar.getmembers() if os.path.basename(m.name) == "plugin.wasm"), None)
            if member is None:
                die("the image's layer holds no plugin.wasm")
            wasm = tar.extractfile(member).read()
    with open(args.out, "wb") as f:
        f.write(wasm)
    print(f"pulled sha256:{sha256(manifest)} -> {args.out} (module sha256:{sha256(wasm)}, {len(wasm)} bytes)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="OCI image layouts and tarballs of the module")
    b.add_argument("--wasm", default=os.path.join(ROOT, "dist", "envoy_appinsights.wasm"))
    b.add_argument("--out", default=os.path.join(ROOT, "dist", "oci"))
    b.add_argument("--version", help="image version and tag (default: Cargo.toml's)")
    s = sub.add_parser("push", help="push a layout to a registry (HTTP API v2, no authentication)")
    s.add_argument("ref")
    s.add_argument("--layout", default=os.path.join(ROOT, "dist", "oci", "compat"),
                   help="an OCI image layout: directory or tarball (default dist/oci/compat)")
    s.add_argument("--plain-http", action="store_true", help="http even for a non-loopback registry")
    g = sub.add_parser("pull", help="pull an image and write its module")
    g.add_argument("ref")
    g.add_argument("out")
    g.add_argument("--plain-http", action="store_true")
    args = p.parse_args()
    {"build": cmd_build, "push": cmd_push, "pull": cmd_pull}[args.cmd](args)


if __name__ == "__main__":
    main()
