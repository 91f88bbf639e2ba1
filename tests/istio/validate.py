#!/usr/bin/env python3
"""Validates Istio manifests against Istio's CRD schemas the way the API server does.

Usage: validate.py [--crds DIR] MANIFEST...    (DIR defaults to tests/istio/crds/)

Each document's apiVersion and kind must be one of the vendored CRDs' served versions, and
the document must match that version's openAPIV3Schema under Kubernetes' rules for
structural schemas with strict field validation (`kubectl apply --validate=strict`, the
default since Kubernetes 1.27):

- an object schema is closed (an unknown field is an error) unless it says
  `x-kubernetes-preserve-unknown-fields: true` (WasmPlugin's free-form `pluginConfig`) or
  gives `additionalProperties` (a map such as `matchLabels`);
- `nullable: true` admits null; `x-kubernetes-int-or-string` admits an integer or a string;
- `x-kubernetes-list-type: map` lists may not repeat their `x-kubernetes-list-map-keys`,
  `set` lists may not repeat an item;
- `format: int32` bounds integers; `oneOf`/`anyOf`/`not` (Istio's "only one of" field
  groups) are JSON Schema's;
- apiVersion and kind are fixed by the CRD, metadata is ObjectMeta's user-settable part.

Not checked: `x-kubernetes-validations` (CEL rules, evaluated by the API server only).
Prints one line per problem and exits 1 if there is any.
"""

import os
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
INT32 = (-(2**31), 2**31 - 1)

OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253},
        "generateName": {"type": "string"},
        "namespace": {"type": "string", "minLength": 1, "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
}


def structural(schema):
    """A Kubernetes structural schema as the equivalent JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: structural(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = structural(value)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [structural(s) for s in value]
        elif key in ("nullable", "format", "x-kubernetes-int-or-string",
                     "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
                     "x-kubernetes-list-type", "x-kubernetes-list-map-keys"):
            continue
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("format") == "int32" and schema.get("type") == "integer":
        out.setdefault("minimum", INT32[0])
        out.setdefault("maximum", INT32[1])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    closed = not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema
    if closed and ("properties" in schema or schema.get("type") == "object"):
        out["additionalProperties"] = False
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        out["uniqueItems"] = True
    elif list_type == "map":
        out["listMapKeys"] = schema.get("x-kubernetes-list-map-keys", [])
    return out


def list_map_keys(validator, keys, instance, schema):
    if not validator.is_type(instance, "array"):
        return
    seen = set()
    for item in instance:
        if not isinstance(item, dict):
            continue
        key = tuple(repr(item.get(k)) for k in keys)
        if key in seen:
            yield jsonschema.ValidationError(f"duplicate entry with {dict(zip(keys, (item.get(k) for k in keys)))}")
        seen.add(key)


Validator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"listMapKeys": list_map_keys})


def load_crds(directory):
    """(apiVersion, kind) -> validator, for every served version of every vendored CRD."""
    validators = {}
    for file in sorted(os.listdir(directory)):
        if not file.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(directory, file), encoding="utf-8") as f:
            for crd in yaml.safe_load_all(f):
                if not crd:
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    if not version.get("served"):
                        continue
                    api_version = f"{group}/{version['name']}"
                    schema = structural(version["schema"]["openAPIV3Schema"])
                    schema["required"] = ["apiVersion", "kind", "metadata"]
                    schema["properties"].update({
                        "apiVersion": {"const": api_version},
                        "kind": {"const": kind},
                        "metadata": OBJECT_META,
                    })
                    Validator.check_schema(schema)
                    validators[(api_version, kind)] = Validator(schema)
    return validators


def describe(error):
    path = ".".join(str(p) for p in error.absolute_path) or "(document)"
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties", {})
        unknown = sorted(k for k in error.instance if k not in known)
        where = f"{path}." if error.absolute_path else ""
        return "; ".join(f'unknown field "{where}{k}"' for k in unknown)
    return f"{path}: {error.message}"


def validate_file(path, validators):
    problems, count = [], 0
    with open(path, encoding="utf-8") as f:
        documents = list(yaml.safe_load_all(f))
    for index, doc in enumerate(documents):
        if doc is None:
            continue
        count += 1
        if not isinstance(doc, dict):
            problems.append(f"{path}: document {index + 1} is not an object")
            continue
        name = f"{doc.get('kind')} {doc.get('metadata', {}).get('name', '?')}"
        validator = validators.get((doc.get("apiVersion"), doc.get("kind")))
        if validator is None:
            known = ", ".join(f"{k} {v}" for v, k in sorted(validators))
            problems.append(f"{path}: {name}: no vendored CRD serves apiVersion {doc.get('apiVersion')!r} "
                            f"kind {doc.get('kind')!r} (vendored: {known})")
            continue
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
            problems.append(f"{path}: {name}: {describe(error)}")
    return problems, count


def main(argv):
    crds = os.path.join(HERE, "crds")
    if len(argv) >= 2 and argv[0] == "--crds":
        crds, argv = argv[1], argv[2:]
    if not argv:
        sys.exit(__doc__)
    validators = load_crds(crds)
    problems, total = [], 0
    for path in argv:
        found, count = validate_file(path, validators)
        problems += found
        total += count
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"ok: {total} documents valid against Istio's CRD schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
