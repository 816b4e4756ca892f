"""Round-trip InferenceServices through KServe's Python SDK models (run by the Python of
a virtualenv with ``kserve`` installed; it clashes with flowship's own pins).

Usage: python kserve_roundtrip.py DOCS.json -> prints a JSON list of problems per
document. Every field must be one the SDK's models know (KServe's for the resource,
the Kubernetes client's for containers and the like), with a value of the declared
type; the models' own checks (required fields) run; and serializing the models back
must give the document unchanged.
"""

import json
import re
import sys
from pathlib import Path

import kserve.models
import kubernetes.client.models
from kserve import ApiClient

PRIMITIVES = {"str": str, "int": int, "float": (int, float), "bool": bool, "object": object}


def model_class(name):
    for module in (kserve.models, kubernetes.client.models):
        if hasattr(module, name):
            return getattr(module, name)
    raise LookupError(f"no SDK model named {name}")


def load(value, kind, where, problems):
    listed = re.fullmatch(r"[Ll]ist\[(.+)\]", kind)
    mapped = re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", kind)
    if listed:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list")
            return None
        return [load(v, listed.group(1), f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if mapped:
        inner = mapped.group(1) or mapped.group(2)
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping")
            return None
        return {k: load(v, inner, f"{where}.{k}", problems) for k, v in value.items()}
    if kind in PRIMITIVES:
        wanted = PRIMITIVES[kind]
        if isinstance(value, bool) and kind in ("int", "float"):
            problems.append(f"{where}: expected {kind}, got a boolean")
        elif not isinstance(value, wanted):
            problems.append(f"{where}: expected {kind}, got {type(value).__name__}")
        return value
    cls = model_class(kind)
    if not isinstance(value, dict):
        problems.append(f"{where}: expected an object ({kind})")
        return None
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        if key not in by_key:
            problems.append(f"{where}.{key}: not a field of {kind}")
            continue
        attr = by_key[key]
        kwargs[attr] = load(item, cls.openapi_types[attr], f"{where}.{key}", problems)
    try:
        return cls(**kwargs)
    except ValueError as exc:  # the model's own checks (required, enums)
        problems.append(f"{where}: {exc}")
        return None


def main():
    docs = json.loads(Path(sys.argv[1]).read_text())
    client = ApiClient()
    report = []
    for doc in docs:
        problems = []
        obj = load(doc, "V1beta1InferenceService", doc.get("kind", "?"), problems)
        if obj is not None and not problems:
            back = client.sanitize_for_serialization(obj)
            if back != doc:
                problems.append(f"does not round-trip: {json.dumps(back, sort_keys=True)}")
        report.append(problems)
    print(json.dumps(report))


main()
