#!/usr/bin/env python3
"""JSON Schemas for kubeconform, made offline from a Kubernetes API server's OpenAPI and from CRD files.

    python scripts/kube-schemas.py --openapi openapi-v2.json --crds charts/podium/crds --out DIR
    kubectl get --raw /openapi/v2 | python scripts/kube-schemas.py --openapi - --out DIR

writes one file per kind and version in kubeconform's layout (`<kind>-<group>-<version>.json`, e.g.
`deployment-apps-v1.json`, `service-v1.json`, `agent-podium-v1alpha1.json`), used with
`kubeconform -strict -schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json'`. The built-in kinds refer to
one `_definitions.json`; each CRD version is one file. The schemas are strict: an object that lists its properties
refuses others, so a misspelt field fails (kubeconform's -strict alone only refuses duplicate keys).

What the API server's OpenAPI v2 says that JSON Schema says otherwise, as kubeconform's own generator does it:
int-or-string is a string or an integer, a Quantity a string or a number, optional fields may be null (YAML's empty
value), and formats and x-kubernetes-* extensions are dropped (no validator knows them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}
SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": INT_OR_STRING,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": QUANTITY,
}


def strict(node: Any, *, nullable: bool = False) -> Any:
    """One schema node made JSON-Schema-proper and strict (recursively)."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string"):
        return dict(INT_OR_STRING)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("format", "description"):
            continue
        if key == "properties":
            required = set(node.get("required") or [])
            out[key] = {name: strict(sub, nullable=name not in required) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [strict(v) for v in value]
        elif key == "$ref":
            out[key] = value.replace("#/definitions/", "_definitions.json#/definitions/")
        else:
            out[key] = value
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if nullable and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if nullable and "$ref" in out:
        out = {"oneOf": [out, {"type": "null"}]}
    return out


def kind_file(group: str, version: str, kind: str) -> str:
    """kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` for an apiVersion of group/version."""
    suffix = f"-{group.split('.')[0].lower()}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def from_openapi(doc: dict[str, Any]) -> dict[str, Any]:
    """Files of the built-in kinds: `_definitions.json` and one small file per kind that refers to it."""
    definitions = {name: SPECIAL.get(name) or strict(schema) for name, schema in doc["definitions"].items()}
    files: dict[str, Any] = {"_definitions.json": {"definitions": definitions}}
    for name, schema in doc["definitions"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if name.endswith("List") or gvk["kind"] in ("WatchEvent", "DeleteOptions", "Status", "APIVersions"):
                continue
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            files[kind_file(gvk["group"], gvk["version"], gvk["kind"])] = {
                "allOf": [{"$ref": f"_definitions.json#/definitions/{name}"}],
                "properties": {"apiVersion": {"enum": [api_version]}, "kind": {"enum": [gvk["kind"]]}},
            }
    return files


def from_crds(paths: list[Path]) -> dict[str, Any]:
    """One standalone file per version of each CustomResourceDefinition in these files or directories."""
    files: dict[str, Any] = {}
    for path in paths:
        for file in sorted(path.glob("*.yaml")) if path.is_dir() else [path]:
            for crd in yaml.safe_load_all(file.read_text()):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    schema.setdefault("properties", {})
                    schema["properties"]["apiVersion"] = {"enum": [f"{group}/{version['name']}"]}
                    schema["properties"]["kind"] = {"enum": [kind]}
                    schema["properties"]["metadata"] = {"type": "object"}
                    files[kind_file(group, version["name"], kind)] = schema
    return files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--openapi", help="the API server's /openapi/v2 document (a file, or - for stdin)")
    parser.add_argument("--crds", type=Path, action="append", default=[], help="CRD files or directories")
    parser.add_argument("--out", type=Path, required=True, help="directory to write the schemas into")
    args = parser.parse_args(argv)
    if not args.openapi and not args.crds:
        parser.error("give --openapi, --crds or both")
    files: dict[str, Any] = {}
    if args.openapi:
        raw = sys.stdin.read() if args.openapi == "-" else Path(args.openapi).read_text()
        doc = json.loads(raw)
        if "definitions" not in doc:
            print("kube-schemas: the --openapi document has no definitions: is it /openapi/v2?", file=sys.stderr)
            return 2
        files.update(from_openapi(doc))
    files.update(from_crds(args.crds))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, schema in files.items():
        (args.out / name).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    print(f"kube-schemas: {len(files)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
