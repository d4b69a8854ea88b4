"""Architectures and trial rows as compact tables, shared by the terminal (CLI) and the HTML report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlnas.space.core import Architecture


def layer_table(arch: Architecture) -> tuple[list[str], list[list[str]], list[tuple[str, str]]]:
    """Decisions named ``<layer>.<field>`` as a table (one row per layer, one column per field) and the
    others as (name, value) pairs: ``block1.filters=16, block1.kernel_size=3, lr=0.001`` becomes
    ``[layer, filters, kernel_size]``, ``[[block1, 16, 3]]`` and ``[(lr, 0.001)]``."""
    fields: list[str] = []
    layers: dict[str, dict[str, str]] = {}
    others: list[tuple[str, str]] = []
    for name, value in arch.items:
        layer, dot, field = name.partition(".")
        if dot:
            if field not in fields:
                fields.append(field)
            layers.setdefault(layer, {})[field] = format_value(value)
        else:
            others.append((name, format_value(value)))
    rows = [[layer, *(values.get(f, "") for f in fields)] for layer, values in layers.items()]
    return ["layer", *fields], rows, others


def format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else ""
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 1000 else str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return format_value(int(value))
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """A plain-text table with aligned columns (numbers right-aligned); rows cut to ``width`` characters."""
    columns = [list(header), *[list(r) for r in rows]]
    widths = [max(len(str(row[i])) for row in columns) for i in range(len(header))]

    def line(row: Sequence[str], is_header: bool = False) -> str:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell)
            numeric = not is_header and _looks_numeric(text)
            cells.append(text.rjust(widths[i]) if numeric else text.ljust(widths[i]))
        out = "  ".join(cells).rstrip()
        return out if width is None or len(out) <= width else out[: max(1, width - 1)] + "…"

    return "\n".join([line(header, True), *(line(r) for r in rows)])


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def architecture_text(arch: Architecture, width: int | None = None) -> str:
    """The architecture as a compact text table (layers) and a line of the other decisions."""
    header, rows, others = layer_table(arch)
    parts = [text_table(header, rows, width)] if rows else []
    if others:
        parts.append(", ".join(f"{k}={v}" for k, v in others))
    return "\n".join(parts)
