#!/usr/bin/env python3
"""Validates every YAML manifest under manifests/ offline, as the API server would.

Kubernetes kinds go through the `kubernetes-validate` package's strict schemas (unknown
fields rejected) for Kubernetes 1.37, or the newest release the installed package knows.
Custom resources are validated against their CRDs in crds/yaml/ (fields the CRD schema does
not declare are rejected too, as `kubectl apply --validate=strict` does).
KubeSchedulerConfiguration documents are not Kubernetes objects: Tessera's own loader checks
them (`cargo test -p tessera-tests --test manifests`), so they are only counted here. Any
other kind fails: an object nobody validates is most likely a typo in apiVersion or kind.

Usage: python3 manifests/validate.py [FILE_OR_DIR ...]   (default: the manifests/ folder)
Exit status 1 on the first run with any invalid document, each one reported.
"""

import copy
import glob
import os
import sys

import jsonschema
import kubernetes_validate.utils as kv
import yaml

WANTED = "1.37.0"
ROOT = os.path.dirname(os.path.abspath(__file__))
CRD_DIR = os.path.join(os.path.dirname(ROOT), "crds", "yaml")
SCHEDULER_CONFIG = ("kubescheduler.config.k8s.io/v1", "KubeSchedulerConfiguration")


def kubernetes_version():
    known = kv.all_versions()
    if WANTED in known:
        return WANTED, None
    return known[-1], f"kubernetes-validate knows no {WANTED} schemas; using {known[-1]}, its newest"


def strict(schema):
    """The CRD schema with undeclared fields rejected, where it lists fields and does not
    preserve unknown ones."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for child in node.get(key, {}).values():
                walk(child)
        for key in ("items", "additionalProperties"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key, []):
                walk(child)

    walk(schema)
    # Every object has these, whatever its CRD declares.
    schema.setdefault("properties", {}).update({
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
    })
    return schema


def crd_schemas():
    """(apiVersion, kind) -> JSON schema of every CRD version in crds/yaml/."""
    schemas = {}
    for path in sorted(glob.glob(os.path.join(CRD_DIR, "*.yaml"))):
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    schema = version.get("schema", {}).get("openAPIV3Schema", {})
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schemas[key] = strict(schema)
    return schemas


def manifest_files(args):
    roots = args or [ROOT]
    files = []
    for root in roots:
        if os.path.isdir(root):
            for dirpath, _, names in os.walk(root):
                files += [os.path.join(dirpath, n) for n in names if n.endswith((".yaml", ".yml"))]
        else:
            files.append(root)
    return sorted(files)


def check(doc, version, crds):
    """None when `doc` is valid, else why not; "config" for a scheduler configuration."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return "not a Kubernetes object (apiVersion and kind are required)"
    key = (doc["apiVersion"], doc["kind"])
    if key == SCHEDULER_CONFIG:
        return "config"
    if key in crds:
        error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(crds[key]).iter_errors(doc))
        return None if error is None else f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
    try:
        kv.validate(doc, version, strict=True)
    except kv.ValidationError as e:
        return f"{'.'.join(map(str, e.path))}: {e.message}"
    except kv.SchemaNotFoundError as e:
        return f"{e.message}, and no CRD in crds/yaml/ defines it"
    return None


def main(args):
    version, note = kubernetes_version()
    print(f"validating manifests against Kubernetes {version} schemas (kubernetes-validate), CRDs from crds/yaml/")
    if note:
        print(f"note: {note}")
    crds = crd_schemas()
    failures = counted = configs = 0
    for path in manifest_files(args):
        rel = os.path.relpath(path)
        try:
            with open(path) as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            print(f"ERROR {rel}: not valid YAML: {e}")
            failures += 1
            continue
        for i, doc in enumerate(docs, 1):
            why = check(doc, version, crds)
            name = doc.get("metadata", {}).get("name", "?") if isinstance(doc, dict) else "?"
            if why == "config":
                configs += 1
            elif why:
                print(f"ERROR {rel} document {i} ({doc.get('kind', '?') if isinstance(doc, dict) else '?'} {name}): {why}")
                failures += 1
            else:
                counted += 1
    print(f"{counted} objects valid, {configs} scheduler configurations left to `tessera config check`, "
          f"{failures} invalid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
