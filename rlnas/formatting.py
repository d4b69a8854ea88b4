"""Architectures and trial rows as compact tables, shared by the terminal (CLI) and the HTML report."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from typing import Any

from rlnas.space.core import Architecture


def layer_table(arch: Architecture) -> tuple[list[str], list[list[str]], list[tuple[str, str]]]:
    """Decisions named ``<layer>.<field>`` as a table (one row per layer, one column per field) and the
    others as (name, value) pairs: ``block1.filters=16, block1.kernel_size=3, lr=0.001`` becomes
    ``[layer, filters, kernel_size]``, ``[[block1, 16, 3]]`` and ``[(lr, 0.001)]``."""
    fields: list[str] = []  # a field first seen in a later layer goes right after the field before it there
    layers: dict[str, dict[str, str]] = {}
    others: list[tuple[str, str]] = []
    for name, value in arch.items:
        layer, dot, field = name.partition(".")
        if dot:
            values = layers.setdefault(layer, {})
            if field not in fields:
                fields.insert(fields.index(list(values)[-1]) + 1 if values else len(fields), field)
            values[field] = format_value(value)
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


MIN_WRAP = 24  # the last column wraps beside the others when it keeps at least this many characters


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """A plain-text table with aligned columns (numbers right-aligned) in ``width`` characters. A last column
    too long for the width (an architecture) wraps at spaces: beside the other columns where it keeps at least
    ``MIN_WRAP`` characters, otherwise on indented lines under its row."""
    columns = [list(header), *[list(r) for r in rows]]
    widths = [max(len(str(row[i])) for row in columns) for i in range(len(header))]
    indent = sum(widths[:-1]) + 2 * (len(widths) - 1)
    if width is not None and len(header) > 1 and indent + widths[-1] > width:
        beside = width - indent >= MIN_WRAP
        start, room = (indent, width - indent) if beside else (4, max(MIN_WRAP, width - 4))
        widths[-1] = min(widths[-1], room)

        def wrapped(row: Sequence[str], is_header: bool = False) -> str:
            if not beside:  # the other columns, then the last one on lines of its own
                lines = [] if is_header else textwrap.wrap(str(row[-1]), room, break_on_hyphens=False)
                return "\n".join([_line(widths[:-1], row[:-1], is_header), *(" " * start + p for p in lines)])
            lines = [str(row[-1])] if is_header else textwrap.wrap(str(row[-1]), room, break_on_hyphens=False)
            head = _line(widths, [*row[:-1], (lines or [""])[0]], is_header)
            return "\n".join([head, *(" " * start + part for part in lines[1:])])

        return "\n".join([wrapped(header, True), *(wrapped(r) for r in rows)])

    def line(row: Sequence[str], is_header: bool = False) -> str:
        out = _line(widths, row, is_header)
        return out if width is None or len(out) <= width else out[: max(1, width - 1)] + "…"

    return "\n".join([line(header, True), *(line(r) for r in rows)])


def _line(widths: Sequence[int], row: Sequence[str], is_header: bool) -> str:
    cells = []
    for i, cell in enumerate(row):
        text = str(cell)
        numeric = not is_header and _looks_numeric(text)
        cells.append(text.rjust(widths[i]) if numeric else text.ljust(widths[i]))
    return "  ".join(cells).rstrip()


def architecture_line(arch: Architecture) -> str:
    """The architecture on one line, every value labelled: ``block1: filters=16 kernel_size=3; block2: ...;
    hidden_units=64 dropout=0.3`` (wraps well at spaces)."""
    header, rows, others = layer_table(arch)
    parts = [
        f"{row[0]}: " + " ".join(f"{field}={value}" for field, value in zip(header[1:], row[1:], strict=True) if value)
        for row in rows
    ]
    if others:
        parts.append(" ".join(f"{k}={v}" for k, v in others))
    return "; ".join(parts)


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


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (inf, nan) inside it as None: what JSON can hold."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def to_json(value: Any, indent: int | None = 1) -> str:
    """Standard JSON (no ``Infinity`` or ``NaN`` tokens, which strict parsers refuse): non-finite numbers
    become null."""
    return json.dumps(finite(value), indent=indent, allow_nan=False)
