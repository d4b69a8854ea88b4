"""The model card (``RUN/export/README.md``) of an export: metrics, inputs and outputs, the data, the
architecture and how to load it. Names from the user's data are escaped, never markup."""

from __future__ import annotations

import html
import json
from typing import Any

from rlnas.space.core import Architecture


def io_names(info: dict[str, Any]) -> tuple[str, str]:
    """The ONNX input and output names: ``image`` or ``features``; ``logits`` or ``prediction``."""
    return (
        "image" if len(info["input_shape"]) == 3 else "features",
        "logits" if info.get("task", "classification") == "classification" else "prediction",
    )


def model_card(arch: Architecture, metrics: dict[str, Any], info: dict[str, Any]) -> str:
    archs = list(
        {a.key: a for a in map(Architecture.from_json, info.get("members") or [info["architecture"]])}.values()
    )
    trials = metrics.get("ensemble_trials") or [metrics.get("trial")]
    head = " | ".join(f"trial {n}" for n in trials) if len(archs) > 1 else "choice"
    rows = f"| decision | {head} |\n|---|{'---|' * len(archs)}\n" + "\n".join(
        f"| {name} | " + " | ".join(str(a.get(name, "-")) for a in archs) + " |"
        for name in dict.fromkeys(n for a in sorted(archs, key=lambda a: -len(a.items)) for n, _ in a.items)
    )
    score = metrics["score"]
    label = {"accuracy": "accuracy", "r2": "R²"}[score]
    repeats = metrics.get(f"test_{score}_repeats", [])
    repeats_row = (
        f"\n| test {label} of the {len(repeats)} final trainings one by one: mean ± std | "
        f"{metrics[f'test_{score}_mean']:.4f} ± {metrics[f'test_{score}_std']:.4f} |"
        if len(repeats) > 1
        else ""
    )
    extra = "".join(
        f"\n| test {m.upper()} | {metrics[f'test_{m}']:.4g} |" for m in ("mae", "rmse") if f"test_{m}" in metrics
    )
    if info["task"] == "regression":
        output = "one predicted value per row (in the target's units)"
    else:
        names = info["class_names"]
        shown = ", ".join(map(_text, names[:20])) + (" ..." if len(names) > 20 else "")
        ensemble, tta = info.get("ensemble", 1) > 1, info.get("tta", "none") != "none"
        whose = "the members' and views'" if ensemble and tta else "the views'" if tta else "the members'"
        kind = f"log-probabilities (the log of {whose} mean probabilities)" if ensemble or tta else "logits"
        output = f"{info['num_classes']} {kind}, one per class in this order: {shown} (softmax for probabilities)"
    if info.get("preprocessing"):
        columns = ", ".join(_text(c["name"]) for c in info["preprocessing"]["columns"])
        inputs = (
            f"encoded table rows of shape (N, {info['input_shape'][0]}) from the columns {columns} "
            "(`rlnas predict EXPORT table.csv` and `rlnas.predict.predict_table` apply the encoding stored in "
            "model.pt; numeric standardization is "
            "part of the model)"
        )
    else:
        inputs = (
            f"float images of shape (N, {', '.join(map(str, info['input_shape']))}) with pixel values in [0, 1] "
            "(normalization is part of the model)"
        )
    members = int(metrics.get("ensemble", 1))
    final = f"final: {metrics['epochs']} epochs on train+val"
    if members > 1:
        of = f" of {len(archs)} architectures" if len(archs) > 1 else ""
        final = f"final: the average of {members} networks{of}, each trained {metrics['epochs']} epochs on train+val"
    if info.get("tta", "none") != "none":
        final += (
            "; predictions averaged over the image and its 1-pixel shifts (test-time augmentation, without it "
            f"{metrics[f'test_{score}_without_tta']:.4f})"
        )
    failed = metrics.get("failed_trainings") or []
    left_out = (
        "\n\nLeft out after a failed training: "
        + "; ".join(f"trial {f['trial']} ({f['stage']}: {_text(f['error'])})" for f in failed)
        + "."
        if failed
        else ""
    )
    return f"""# rlnas model: {info["family"]} on {metrics["dataset"]} ({info["task"]})

| metric | value |
|---|---|
| test {label} ({final}) | {metrics[f"test_{score}"]:.4f} |{repeats_row}{extra}
| validation {label} ({metrics.get(f"val_{score}_kind", "proxy").split(":")[0]}) | {metrics[f"val_{score}"]:.4f} |
| parameters | {metrics["params"]} |
| FLOPs per example | {metrics["flops"]} |
| CPU latency per example (batch 1, 1 thread) | {metrics["latency_ms"]:.3f} ms |

Input: {inputs}. Output: {output}.{left_out}

Data: {_text(json.dumps(info["dataset"]))}, fingerprint {info["data_fingerprint"]}.

## Architecture{"s (one column per ensemble member)" if len(archs) > 1 else ""}
{rows}

## Loading
```python
import rlnas
model = rlnas.load_model("path/to/export")          # nn.Module, eval mode

import torch                                        # without rlnas
program = torch.export.load("path/to/export/model.pt2").module()

import onnxruntime                                  # without torch
session = onnxruntime.InferenceSession("path/to/export/model.onnx")
outputs = session.run(None, {{"{io_names(info)[0]}": inputs}})[0]
```
Versions: {json.dumps(info["versions"])}
"""


def _text(value: object) -> str:
    """Text from the user's data (class and column names, paths) as plain Markdown text: HTML escaped, table
    bars and backticks neutralized, so that a name never becomes markup in the model card."""
    return html.escape(str(value)).replace("|", "&#124;").replace("`", "&#96;")
