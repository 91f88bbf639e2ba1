//! `scripts/package.sh`: the module as an OCI image, as Istio's fetcher reads it. Two builds
//! give the same bytes; the compat variant is one tar+gzip layer holding `plugin.wasm`, the oci
//! variant the raw module and its runtime config; a real registry (Debian's docker-registry,
//! on loopback) takes the push and gives the same module back by digest.

use harness::envoy::{filter_wasm, repo_root, scratch_dir};
use harness::http;
use harness::oci::{self, digest, gunzip, module_of, untar, Layout, Registry};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const VARIANTS: [&str; 2] = ["compat", "oci"];

/// Runs `scripts/package.sh <args>` on the built module; its standard output.
fn package(args: &[&str]) -> String {
    let out = Command::new(repo_root().join("scripts/package.sh"))
        .args(args)
        .env("SKIP_BUILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scripts/package.sh {args:?} failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn build(out: &Path) -> String {
    let wasm = filter_wasm();
    package(&[
        "build",
        "--wasm",
        wasm.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

fn version() -> String {
    let cargo = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let line = cargo.lines().find(|l| l.starts_with("version = ")).unwrap();
    line.trim_start_matches("version = ").trim_matches('"').to_string()
}

/// The word after `label` on the line starting with it.
fn printed(stdout: &str, label: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{stdout}"));
    line.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn two_builds_give_the_same_bytes_and_digests() {
    let (a, b) = (scratch_dir("oci-a"), scratch_dir("oci-b"));
    let (printed_a, printed_b) = (build(&a), build(&b));
    // Label, digest and size of each line (the paths name the two output directories,
    // relative to the repository when it can: the same directory differs in spelling).
    let digests = |printed: &str| -> Vec<String> {
        printed
            .lines()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(digests(&printed_a), digests(&printed_b));
    let module = std::fs::read(filter_wasm()).unwrap();
    assert_eq!(printed(&printed_a, "module"), digest(&module), "{printed_a}");
    for variant in VARIANTS {
        let tarball = format!("envoy_appinsights-{}-image-{variant}.tar", version());
        let (ta, tb) = (
            std::fs::read(a.join(&tarball)).unwrap(),
            std::fs::read(b.join(&tarball)).unwrap(),
        );
        assert!(ta == tb, "{tarball} differs between two builds");
        let (manifest_digest, _, _) = Layout(a.join(variant)).manifest();
        assert_eq!(printed(&printed_a, variant), manifest_digest, "{printed_a}");
        // The tarball holds the layout's files, root-owned, at mtime 0.
        for entry in untar(&ta) {
            assert_eq!(
                (entry.uid, entry.gid, entry.mtime, entry.owner.as_str()),
                (0, 0, 0, ":"),
                "{}",
                entry.name
            );
            assert_eq!(
                entry.data,
                std::fs::read(a.join(variant).join(&entry.name)).unwrap(),
                "{}",
                entry.name
            );
        }
    }
}

#[test]
fn the_compat_variant_is_one_reproducible_tar_gzip_layer_holding_plugin_wasm() {
    let dir = scratch_dir("oci-compat");
    build(&dir);
    let layout = Layout(dir.join("compat"));
    let (_, _, manifest) = layout.manifest();
    assert_eq!(manifest["mediaType"], oci::MANIFEST);
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"], "compat",
        "{manifest}"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        version().as_str()
    );
    assert_eq!(manifest["config"]["mediaType"], oci::IMAGE_CONFIG);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], oci::TAR_GZIP);
    let gz = layout.blob(layers[0]["digest"].as_str().unwrap());
    assert_eq!(layers[0]["size"], gz.len());
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "the gzip header carries no timestamp");
    assert_eq!(gz[3] & 0x08, 0, "the gzip header carries no file name");
    let tar = gunzip(&gz);
    let entries = untar(&tar);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["plugin.wasm"]);
    let e = &entries[0];
    assert_eq!((e.mode, e.uid, e.gid, e.mtime, e.owner.as_str()), (0o644, 0, 0, 0, ":"));
    assert!(
        e.data == std::fs::read(filter_wasm()).unwrap(),
        "plugin.wasm is not the module"
    );
    // The image config names the layer's uncompressed digest, as OCI image tools check.
    let config: Value = serde_json::from_slice(&layout.blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], digest(&tar), "{config}");
    assert_eq!(
        (config["architecture"].as_str(), config["os"].as_str()),
        (Some("wasm"), Some("wasip1"))
    );
}

#[test]
fn the_oci_variant_has_the_two_layers_istio_looks_for() {
    let dir = scratch_dir("oci-artifact");
    build(&dir);
    let layout = Layout(dir.join("oci"));
    let (_, _, manifest) = layout.manifest();
    assert_eq!(manifest["config"]["mediaType"], oci::WASM_CONFIG);
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(types, [oci::WASM_CONFIG, oci::WASM_LAYER], "{manifest}");
    let runtime: Value =
        serde_json::from_slice(&layout.blob(manifest["layers"][0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(runtime["type"], "envoy_proxy", "{runtime}");
    let module = module_of(&manifest, |d| layout.blob(d));
    assert!(
        module == std::fs::read(filter_wasm()).unwrap(),
        "the wasm layer is not the module"
    );
}

/// `GET /v2/envoy-appinsights/<what>` from the registry, 200 expected.
fn get(registry: &Registry, what: &str, accept: &str) -> http::ClientResponse {
    let path = format!("/v2/envoy-appinsights/{what}");
    let r = http::request(registry.addr, "GET", &path, &[("Accept", accept)], b"").unwrap();
    assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.text(), registry.log());
    r
}

#[test]
fn a_real_registry_takes_the_push_and_gives_the_module_back_by_digest() {
    let dir = scratch_dir("oci-registry");
    build(&dir);
    let registry = Registry::start(&dir.join("registry")).unwrap();
    let module = std::fs::read(filter_wasm()).unwrap();
    for variant in VARIANTS {
        let layout = Layout(dir.join(variant));
        let (manifest_digest, manifest_bytes, _) = layout.manifest();
        let tag = format!("{}-{variant}", version());
        let reference = format!("{}/envoy-appinsights:{tag}", registry.addr);
        let pushed = package(&["push", &reference, "--layout", layout.0.to_str().unwrap()]);
        assert_eq!(printed(&pushed, "digest"), manifest_digest, "{pushed}");

        // By digest: the very bytes pushed, under the right media type.
        let r = get(&registry, &format!("manifests/{manifest_digest}"), oci::MANIFEST);
        assert_eq!(r.header("Content-Type"), Some(oci::MANIFEST));
        assert_eq!(r.header("Docker-Content-Digest"), Some(manifest_digest.as_str()));
        assert_eq!(digest(&r.body), manifest_digest);
        assert!(r.body == manifest_bytes);
        let manifest: Value = r.json().unwrap();
        let pulled = module_of(&manifest, |d| {
            let blob = get(&registry, &format!("blobs/{d}"), "*/*").body;
            assert_eq!(digest(&blob), d, "blob {d} came back with other bytes");
            blob
        });
        assert!(pulled == module, "{variant}: the pulled module differs from dist's");

        // The tag names the same manifest.
        let by_tag = get(&registry, &format!("manifests/{tag}"), oci::MANIFEST);
        assert_eq!(by_tag.header("Docker-Content-Digest"), Some(manifest_digest.as_str()));

        // The script's own pull, by digest, writes the same module.
        let out = dir.join(format!("pulled-{variant}.wasm"));
        let by_digest = format!("{}/envoy-appinsights@{manifest_digest}", registry.addr);
        package(&["pull", &by_digest, out.to_str().unwrap()]);
        assert!(std::fs::read(&out).unwrap() == module);

        // The layout's tarball (what a release ships) pushes as the same image.
        let tarball = dir.join(format!("envoy_appinsights-{}-image-{variant}.tar", version()));
        let from_tar = format!("{}/envoy-appinsights:{tag}-tar", registry.addr);
        let pushed = package(&["push", &from_tar, "--layout", tarball.to_str().unwrap()]);
        assert_eq!(printed(&pushed, "digest"), manifest_digest, "{pushed}");
    }
}
