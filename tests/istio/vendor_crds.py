#!/usr/bin/env python3
"""Extracts the CRD schemas envoy/istio/appinsights.yaml needs from Istio's generated CRDs.

Usage: vendor_crds.py <crd-all.gen.yaml> <istio version> <commit> > tests/istio/crds/istio-crds.yaml

<crd-all.gen.yaml> is manifests/charts/base/files/crd-all.gen.yaml of github.com/istio/istio
at a release tag. Only the kinds and API versions the manifest uses are kept, and the
schemas' `description` texts are dropped (they make up most of the file and do not change
what validates); everything else is Istio's schema as published.
"""

import sys

import yaml

# CRD name -> the API versions envoy/istio/appinsights.yaml uses.
WANTED = {
    "serviceentries.networking.istio.io": ["v1"],
    "destinationrules.networking.istio.io": ["v1"],
    "wasmplugins.extensions.istio.io": ["v1alpha1"],
}
SOURCE_PATH = "manifests/charts/base/files/crd-all.gen.yaml"


def strip_descriptions(schema):
    """Drops schema `description`s (a field named `description` under `properties` stays)."""
    if isinstance(schema, list):
        return [strip_descriptions(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key == "properties":
            out[key] = {name: strip_descriptions(s) for name, s in value.items()}
        else:
            out[key] = strip_descriptions(value)
    return out


def main():
    path, version, commit = sys.argv[1:4]
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    kept = []
    for doc in docs:
        name = doc.get("metadata", {}).get("name")
        if name not in WANTED:
            continue
        versions = [
            {"name": v["name"], "served": v["served"], "schema": strip_descriptions(v["schema"])}
            for v in doc["spec"]["versions"]
            if v["name"] in WANTED[name]
        ]
        kept.append({
            "apiVersion": doc["apiVersion"],
            "kind": doc["kind"],
            "metadata": {"name": name},
            "spec": {
                "group": doc["spec"]["group"],
                "names": {"kind": doc["spec"]["names"]["kind"]},
                "scope": doc["spec"]["scope"],
                "versions": versions,
            },
        })
    missing = set(WANTED) - {d["metadata"]["name"] for d in kept}
    if missing:
        sys.exit(f"not in {path}: {sorted(missing)}")
    sys.stdout.write(
        "# Istio's CustomResourceDefinitions for the kinds envoy/istio/appinsights.yaml uses,\n"
        f"# from github.com/istio/istio {SOURCE_PATH}\n"
        f"# at tag {version} (commit {commit}).\n"
        "# Only the API versions the manifest uses are kept and schema descriptions are dropped;\n"
        "# regenerate with tests/istio/vendor_crds.py (see tests/istio/README.md).\n"
    )
    sys.stdout.write(yaml.safe_dump_all(kept, sort_keys=False, width=100))


if __name__ == "__main__":
    main()
