"""``flowship export onnx``: the version's ONNX graph with who-it-is in its metadata.

The conversion and its parity check belong to the Predictor
(``flowship.predict.onnx_export``); this module adds the rows to check on (the attached
baseline, when there is one), stamps the graph's metadata and writes the file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowship.errors import NotFound
from flowship.packaging._output import check_file, write_file

log = logging.getLogger(__name__)
PREFIX = "flowship."


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    model_name: str | None
    model_version: str | None
    dtype: str
    opset: int
    rows: int
    baseline_rows: int
    max_gap: float
    metadata: dict[str, str]


def export_onnx(
    ref: str, out: Path, *, opset: int | None = None, float32: bool = False
) -> OnnxExport:
    """Convert ``ref``, check it, stamp it and write it to ``out``; nothing is written
    when any step fails."""
    import onnx

    from flowship.predict.onnx_export import convert_to_onnx
    from flowship.predict.refs import resolve_ref

    check_file(Path(out), ours=is_flowship_onnx)  # before the costly conversion
    resolved = resolve_ref(ref)
    graph = convert_to_onnx(ref, opset=opset, float32=float32, extra=_baseline(resolved))
    model = onnx.load_from_string(graph.model)
    metadata = {
        "model_name": graph.resolved.model_name or "",
        "model_version": graph.resolved.model_version or "",
        "model_uri": graph.resolved.uri,
        "run_id": graph.run_id or "",
        "signature": json.dumps([c.to_dict() for c in graph.columns]),
        "input_order": json.dumps(graph.order),
        "input_dtype": graph.dtype,
        "classes": json.dumps(graph.classes) if graph.classes is not None else "",
        "label_rule": graph.label_rule,
        "parity": f"max difference {graph.max_gap:.3g} on {graph.rows} rows "
        f"({graph.extra_rows} from the baseline); tolerance 1e-05",
    }
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = PREFIX + key, value
    if graph.resolved.model_version and graph.resolved.model_version.isdigit():
        model.model_version = int(graph.resolved.model_version)
    model.doc_string = (
        f"{graph.resolved.model_name or graph.resolved.uri} exported by flowship: input "
        f"'input' is a [rows, {len(graph.order)}] {graph.dtype} matrix with columns "
        f"{', '.join(graph.order)}."
    )
    onnx.checker.check_model(model)
    path = write_file(Path(out), model.SerializeToString(), ours=is_flowship_onnx)
    main_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxExport(
        path=path,
        model_name=graph.resolved.model_name,
        model_version=graph.resolved.model_version,
        dtype=graph.dtype,
        opset=int(main_opset),
        rows=graph.rows,
        baseline_rows=graph.extra_rows,
        max_gap=graph.max_gap,
        metadata={PREFIX + k: v for k, v in metadata.items()},
    )


def is_flowship_onnx(path: Path) -> bool:
    """Whether ``path`` is an ONNX file flowship exported (safe to replace)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return any(p.key == PREFIX + "model_uri" for p in model.metadata_props)


def read_metadata(path: Path) -> dict[str, str]:
    """The ``flowship.*`` metadata of an exported file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}


def _baseline(resolved: Any) -> Any:
    """The baseline attached to the version (monitor attach-baseline), or None."""
    if resolved.model_name is None or resolved.run_id is None:
        return None
    import pyarrow.parquet as pq

    from flowship.registry.baselines import fetch_baseline

    try:
        path = fetch_baseline(resolved.model_name, resolved.model_version, resolved.run_id)
    except NotFound:
        return None
    log.info("Checking ONNX parity on the baseline %s as well", path)
    return pq.read_table(path).slice(0, 5000).to_pandas()
