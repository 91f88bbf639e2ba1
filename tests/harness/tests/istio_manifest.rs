//! The shipped Istio manifest, envoy/istio/appinsights.yaml, is what Istio accepts and what
//! the filter accepts: every document validates against Istio's own CRD schemas (vendored in
//! tests/istio/crds/, checked by tests/istio/validate.py with unknown fields forbidden, as
//! `kubectl apply --validate=strict` does), the WasmPlugin's `pluginConfig` is a valid filter
//! configuration, and the three resources agree on the ingestion host.
//! Python's jsonschema and PyYAML come from .venv (scripts/setup.sh installs them).

use harness::envoy::{repo_root, scratch_dir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST: &str = "envoy/istio/appinsights.yaml";

fn python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup.sh", python.display());
    python
}

/// Runs tests/istio/validate.py on `file`: (passed, what it printed).
fn validate(file: &Path) -> (bool, String) {
    let out = Command::new(python())
        .arg(repo_root().join("tests/istio/validate.py"))
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The shipped manifest with `from` replaced by `to` (which must occur), in a scratch file.
fn mutated(from: &str, to: &str) -> PathBuf {
    let shipped = std::fs::read_to_string(repo_root().join(MANIFEST)).unwrap();
    assert!(shipped.contains(from), "{MANIFEST} no longer contains {from:?}");
    let file = scratch_dir("istio").join("appinsights.yaml");
    std::fs::write(&file, shipped.replacen(from, to, 1)).unwrap();
    file
}

/// The manifest's documents as JSON (PyYAML reads them, as the API server's YAML would).
fn documents() -> Vec<Value> {
    documents_of(&repo_root().join(MANIFEST))
}

fn documents_of(file: &Path) -> Vec<Value> {
    let out = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn document<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("{MANIFEST} has no {kind}"))
}

#[test]
fn the_shipped_manifest_matches_istios_crd_schemas() {
    let (ok, text) = validate(&repo_root().join(MANIFEST));
    assert!(ok, "{MANIFEST} does not match Istio's CRD schemas:\n{text}");
    assert!(text.contains("ok: 3 documents"), "{text}");
}

#[test]
fn a_misspelt_field_is_refused() {
    let (ok, text) = validate(&mutated("failStrategy:", "failstrategy:"));
    assert!(!ok, "accepted a misspelt field:\n{text}");
    assert!(text.contains(r#"unknown field "spec.failstrategy""#), "{text}");
    // Inside a nested object of another kind too.
    let (ok, text) = validate(&mutated("mode: SIMPLE", "mode: SIMPLE\n      snii: x"));
    assert!(!ok, "accepted a misspelt field:\n{text}");
    assert!(
        text.contains(r#"unknown field "spec.trafficPolicy.tls.snii""#),
        "{text}"
    );
}

#[test]
fn a_wrong_enum_value_is_refused() {
    let (ok, text) = validate(&mutated("phase: STATS", "phase: STAT"));
    assert!(!ok, "accepted phase: STAT:\n{text}");
    assert!(text.contains("spec.phase: 'STAT' is not one of"), "{text}");
}

#[test]
fn a_kind_version_istio_does_not_serve_is_refused() {
    let (ok, text) = validate(&mutated("extensions.istio.io/v1alpha1", "extensions.istio.io/v1beta9"));
    assert!(!ok, "accepted an unknown apiVersion:\n{text}");
    assert!(text.contains("no vendored CRD serves"), "{text}");
}

#[test]
fn the_plugin_config_is_accepted_by_the_filter_and_names_the_istio_cluster() {
    let docs = documents();
    let plugin = document(&docs, "WasmPlugin");
    let config = envoy_appinsights::config::Config::from_value(&plugin["spec"]["pluginConfig"])
        .unwrap_or_else(|e| panic!("the WasmPlugin's pluginConfig: {e}"));
    let host = document(&docs, "ServiceEntry")["spec"]["hosts"][0]
        .as_str()
        .unwrap()
        .to_owned();
    for logger in &config.loggers {
        assert_eq!(logger.connection.ingestion_endpoint.host, host, "logger {}", logger.id);
        assert_eq!(logger.cluster, format!("outbound|443||{host}"), "logger {}", logger.id);
    }
    let rule = document(&docs, "DestinationRule");
    assert_eq!(rule["spec"]["host"], host.as_str());
    assert_eq!(rule["spec"]["trafficPolicy"]["tls"]["sni"], host.as_str());
}

#[test]
fn tls_origination_stays_in_the_plugins_namespace() {
    // In-mesh applications that reach the ingestion host with their own HTTPS must not get
    // a second TLS layer from this DestinationRule: both resources are exported only to
    // their own namespace, which must be the WasmPlugin's.
    let docs = documents();
    let namespace = &document(&docs, "WasmPlugin")["metadata"]["namespace"];
    for kind in ["ServiceEntry", "DestinationRule"] {
        let doc = document(&docs, kind);
        assert_eq!(doc["spec"]["exportTo"], serde_json::json!(["."]), "{kind}");
        assert_eq!(&doc["metadata"]["namespace"], namespace, "{kind}");
    }
}

#[test]
fn the_sha256_placeholder_is_a_valid_pin_once_uncommented() {
    let zeros = "0".repeat(64);
    let placeholder = format!("# sha256: \"{zeros}\"");
    let (ok, text) = validate(&mutated(&placeholder, &format!("sha256: \"{zeros}\"")));
    assert!(ok, "the uncommented sha256 line is refused:\n{text}");
    // Unquoted, YAML reads these digits as a number, which Istio refuses.
    let (ok, text) = validate(&mutated(&placeholder, &format!("sha256: {zeros}")));
    assert!(!ok && text.contains("spec.sha256: 0 is not of type 'string'"), "{text}");
    // Istio wants bare hex: a digest as `docker` prints it, with its prefix, is refused.
    let (ok, text) = validate(&mutated(&placeholder, &format!("sha256: \"sha256:{zeros}\"")));
    assert!(!ok, "accepted a prefixed digest:\n{text}");
    assert!(text.contains("spec.sha256"), "{text}");
}

#[test]
fn the_readmes_istio_examples_match_the_schemas_and_the_filter() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("\n## Istio\n").expect("the README has an Istio section");
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let blocks: Vec<&str> = section
        .split("```yaml\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .collect();
    assert!(blocks.len() >= 2, "the Istio section's YAML examples are gone");
    let dir = scratch_dir("istio-readme");
    for (i, block) in blocks.iter().enumerate() {
        let file = dir.join(format!("example-{i}.yaml"));
        std::fs::write(&file, block).unwrap();
        let (ok, text) = validate(&file);
        assert!(ok, "README Istio example {}:\n{block}\n{text}", i + 1);
        for doc in documents_of(&file).iter().filter(|d| d["kind"] == "WasmPlugin") {
            envoy_appinsights::config::Config::from_value(&doc["spec"]["pluginConfig"])
                .unwrap_or_else(|e| panic!("README Istio example {}: pluginConfig: {e}", i + 1));
        }
    }
}

#[test]
fn two_fields_of_a_one_of_group_are_refused() {
    // Istio's CRDs say "only one of" with oneOf over `required`: one is fine, two are not.
    let one = "  trafficPolicy:\n    loadBalancer: {consistentHash: {useSourceIp: true}}\n";
    let (ok, text) = validate(&mutated("  trafficPolicy:\n", one));
    assert!(ok, "{text}");
    let two = "  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN, consistentHash: {useSourceIp: true}}\n";
    let (ok, text) = validate(&mutated("  trafficPolicy:\n", two));
    assert!(!ok, "accepted two of a oneOf group:\n{text}");
    assert!(text.contains("spec.trafficPolicy.loadBalancer"), "{text}");
}
