//! `scripts/release.sh`: exactly the files the README lists, a checksum `sha256sum -c` accepts,
//! image tarballs holding the module, an Istio manifest naming this version's image by the
//! digest Istio checks, the shipped Envoy configuration and this version's CHANGELOG section.

use harness::envoy::{filter_wasm, repo_root, scratch_dir};
use harness::oci::{digest, module_of, untar};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn version() -> String {
    let cargo = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let line = cargo.lines().find(|l| l.starts_with("version = ")).unwrap();
    line.trim_start_matches("version = ").trim_matches('"').to_string()
}

/// The files of a layout tarball, by name.
fn layout_files(tarball: &Path) -> BTreeMap<String, Vec<u8>> {
    untar(&std::fs::read(tarball).unwrap())
        .into_iter()
        .map(|e| (e.name, e.data))
        .collect()
}

#[test]
fn a_release_is_exactly_the_listed_files_and_they_agree() {
    let version = version();
    let out = scratch_dir("release").join(&version);
    let run = Command::new(repo_root().join("scripts/release.sh"))
        .env("SKIP_BUILD", "1")
        .env("WASM", filter_wasm())
        .env("RELEASE_DIR", &out)
        .env("IMAGE", "registry.test:5000/gateways/envoy-appinsights")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "scripts/release.sh failed:\n{printed}{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let name = format!("envoy_appinsights-{version}");
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected = vec![
        format!("CHANGELOG-{version}.md"),
        "envoy.yaml".to_string(),
        format!("{name}-image-compat.tar"),
        format!("{name}-image-oci.tar"),
        format!("{name}.wasm"),
        format!("{name}.wasm.sha256"),
        "istio-appinsights.yaml".to_string(),
    ];
    expected.sort();
    assert_eq!(files, expected);

    // The module, and a checksum file sha256sum -c accepts.
    let module = std::fs::read(filter_wasm()).unwrap();
    assert!(std::fs::read(out.join(format!("{name}.wasm"))).unwrap() == module);
    let sum = std::fs::read_to_string(out.join(format!("{name}.wasm.sha256"))).unwrap();
    let module_digest = digest(&module);
    assert_eq!(sum, format!("{}  {name}.wasm\n", &module_digest["sha256:".len()..]));
    let check = Command::new("sha256sum")
        .args(["-c", &format!("{name}.wasm.sha256")])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    // Each image tarball is a layout whose manifest leads to the same module.
    let mut manifest_digests = BTreeMap::new();
    for variant in ["compat", "oci"] {
        let files = layout_files(&out.join(format!("{name}-image-{variant}.tar")));
        let blob = |d: &str| files[&format!("blobs/sha256/{}", &d["sha256:".len()..])].clone();
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            version.as_str()
        );
        let manifest_bytes = blob(&manifest_digest);
        assert_eq!(digest(&manifest_bytes), manifest_digest);
        let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
        assert!(
            module_of(&manifest, blob) == module,
            "{variant}: the image holds another module"
        );
        manifest_digests.insert(variant, manifest_digest);
    }
    assert!(printed.contains(&manifest_digests["compat"]), "{printed}");
    assert!(printed.contains(&module_digest), "{printed}");

    // The Istio manifest: this version's image, and the compat manifest's digest as sha256
    // (for oci:// urls Istio compares sha256 with the manifest digest, not the module's).
    let istio = std::fs::read_to_string(out.join("istio-appinsights.yaml")).unwrap();
    let shipped = std::fs::read_to_string(repo_root().join("envoy/istio/appinsights.yaml")).unwrap();
    let url = format!("url: oci://registry.test:5000/gateways/envoy-appinsights:{version}");
    let sha = format!("sha256: {}", &manifest_digests["compat"]["sha256:".len()..]);
    let lines: Vec<&str> = istio.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| *l == url)
        .unwrap_or_else(|| panic!("no {url:?} in:\n{istio}"));
    assert_eq!(lines.get(at + 1), Some(&sha.as_str()), "{istio}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("sha256:")).count(), 1, "{istio}");
    let others = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim().starts_with("url:") && !l.trim().starts_with("sha256:"))
            .map(String::from)
            .collect()
    };
    assert_eq!(
        others(&istio),
        others(&shipped),
        "only url and sha256 differ from the shipped manifest"
    );

    // The Envoy configuration docker-compose runs (shipped_configs.rs pins it as the renderer's).
    let envoy = std::fs::read_to_string(out.join("envoy.yaml")).unwrap();
    assert!(envoy == std::fs::read_to_string(repo_root().join("envoy/envoy.yaml")).unwrap());

    // This version's section of the CHANGELOG, and nothing else.
    let notes = std::fs::read_to_string(out.join(format!("CHANGELOG-{version}.md"))).unwrap();
    assert!(notes.starts_with(&format!("## [{version}]")), "{notes}");
    assert_eq!(notes.matches("\n## ").count(), 0, "{notes}");
    let changelog = std::fs::read_to_string(repo_root().join("CHANGELOG.md")).unwrap();
    assert!(
        changelog.contains(notes.trim()),
        "the section is CHANGELOG.md's own text"
    );
}
