"""Reports of finished runs: a self-contained index.html, the trials as CSV and Excel, and the plots as PNG.

One run (``RUN/report`` or ``--out``): a summary card (best trial and its architecture, proxy vs final test
score, params, FLOPs, latency, wall time, strategy, seed, config), the top 10 trials, Optuna's plots of the
trials (optimization history, parameter importances, parallel coordinates, slices), Pareto fronts with trial
numbers, the repeated trainings of the export and the controller's choice probabilities over trials.
Several runs (``--out`` only): best-so-far curves labelled by strategy and seed, and a table of their metrics.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlnas import atomic
from rlnas.errors import UserError
from rlnas.evaluation.base import FAILED, INFEASIBLE, PRUNED
from rlnas.exporter import EXPORT_DIR
from rlnas.formatting import architecture_line, format_value, layer_table
from rlnas.policy_view import plot_policy, policy_history
from rlnas.report_optuna import importances, optuna_plots
from rlnas.report_plots import (
    Run,
    plot_curves,
    plot_pareto,
    plot_repeats,
    plot_runs,
    run_labels,
)
from rlnas.rundir import open_run
from rlnas.store import TrialRecord

log = logging.getLogger(__name__)
REPORT_DIR = "report"


# -- tables ------------------------------------------------------------------------------------------
def write_excel(records: Sequence[TrialRecord], path: Path) -> Path:
    """The trials as a sheet with a frozen header, filters, number formats and fitted column widths."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    rows = [r.flat() for r in records]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    book = Workbook()
    sheet = book.active
    sheet.title = "trials"
    sheet.append(columns)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([_cell(row.get(c)) for c in columns])
        for cell in sheet[sheet.max_row]:
            if cell.data_type == "f":  # text from a run ("=HYPERLINK(...)" in an error) is text, never a formula
                cell.data_type = "s"
    for j, column in enumerate(columns, start=1):
        values = [row.get(column) for row in rows]
        fmt = (
            "#,##0"
            if all(isinstance(v, int) and not isinstance(v, bool) for v in values if v is not None)
            else ("0.0000" if any(isinstance(v, float) for v in values) else None)
        )
        if fmt is not None:
            for i in range(2, len(rows) + 2):
                sheet.cell(row=i, column=j).number_format = fmt
        width = max([len(column)] + [len(str(v)) for v in values[:200] if v is not None])
        sheet.column_dimensions[get_column_letter(j)].width = min(40, max(8, width + 2))
    sheet.freeze_panes = "B2"
    sheet.auto_filter.ref = sheet.dimensions
    book.save(path)
    return path


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] | None = None) -> str:
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td class='{'num' if numeric[i] else ''}'>{_cell_text(v)}</td>" for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell_text(value: Any) -> str:
    return html.escape(value if isinstance(value, str) else format_value(value))


def _architecture_html(record: TrialRecord) -> str:
    header, rows, others = layer_table(record.architecture)
    parts = [_html_table(header, rows)] if rows else []
    if others:
        parts.append(_html_table(["decision", "choice"], others))
    return "".join(parts)


def _metric(record: TrialRecord | None, name: str) -> str:
    if record is None or name not in record.metrics:
        return "–"
    return format_value(float(record.metrics[name]))


def summary_card(run: Run) -> str:
    """The first thing the report shows: what was searched, what won, how good it is, what it cost."""
    best = run.best()
    score = run.score
    c = run.config
    failed = sum(1 for r in run.records if r.status == FAILED)
    rejected = sum(1 for r in run.records if r.status == INFEASIBLE)
    pruned = sum(1 for r in run.records if r.status == PRUNED)
    seconds = run.summary.get("search_seconds")
    rows: list[tuple[str, str]] = [
        ("strategy / seed", f"{c.strategy.name} / {c.seed}"),
        ("dataset / space", f"{c.dataset.name} / {c.space.name} ({c.space.family})"),
        (
            "trials",
            f"{len(run.records)} ({failed} failed, {rejected} over the limits, not evaluated"
            + (f", {pruned} stopped early by the pruner" if pruned else "")
            + "); "
            f"budget {c.budget.evaluations}",
        ),
        ("search wall time", "–" if seconds is None else f"{float(seconds):,.0f} s"),
    ]
    exported = None
    how = " (shared weights)" if c.evaluation == "oneshot" else f" ({c.training.epochs} epochs, search split)"
    if best is not None:
        rows += [
            ("best trial (reward)", f"#{best.number}: reward {best.reward:.4f}"),
            (
                f"{run.score_label} {score}",
                _metric(best, run.score_key) + how,
            ),
            (
                "params / FLOPs / latency",
                f"{_metric(best, 'params')} / {_metric(best, 'flops')} / {_metric(best, 'latency_ms')} ms",
            ),
        ]
    if run.export is not None:
        m = run.export
        s = m.get("score", score)
        exported = next((r for r in run.records if r.number == m.get("trial")), None)
        repeats = m.get(f"test_{s}_repeats", [])
        final = (
            f"{m[f'test_{s}_mean']:.4f} ± {m[f'test_{s}_std']:.4f} over {len(repeats)} trainings"
            if len(repeats) > 1
            else f"{m[f'test_{s}']:.4f}"
        )
        rows += [
            (f"final test {s}", f"{final} (trial #{m.get('trial')}, {m.get('epochs')} epochs on train+validation)"),
            (f"{run.score_label} {s} of that trial", f"{m.get(f'val_{s}', float('nan')):.4f}"),
        ]
    else:
        rows.append(("final test score", "not exported yet: rlnas export RUN"))
    shown = exported or best
    arch = (
        ""
        if shown is None
        else (
            f"<h3>Architecture of trial #{shown.number}{' (exported)' if exported else ''}</h3>"
            + _architecture_html(shown)
        )
    )
    config = html.escape(c.to_yaml())
    card = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return (
        f"<section class='card'><h2>Summary</h2><table class='kv'>{card}</table>{arch}"
        f"<details><summary>config.yaml</summary><pre>{config}</pre></details></section>"
    )


def export_section(run: Run, target: Path) -> str:
    """Where the exported model is, its files (linked from the report's folder) and its model card."""
    folder = run.path / EXPORT_DIR
    if run.export is None or not folder.is_dir():
        return (
            "<section><h2>Exported model</h2><p>Not exported yet: <code>rlnas export "
            f"{html.escape(str(run.path))}</code> retrains the best architecture and writes "
            f"<code>{html.escape(str(folder))}</code>.</p></section>"
        )
    links = " · ".join(
        f"<a href='{html.escape(Path(os.path.relpath(path, target)).as_posix())}'>{html.escape(path.name)}</a>"
        for path in sorted(folder.iterdir())
        if path.is_file()
    )
    card = folder / "README.md"
    embedded = (
        f"<details open><summary>model card (README.md)</summary><pre>{html.escape(card.read_text())}</pre></details>"
        if card.is_file()
        else ""
    )
    return (
        f"<section><h2>Exported model</h2><p>In <code>{html.escape(str(folder.resolve()))}</code>: {links}</p>"
        "<p class='note'>Load it with <code>rlnas.load_model(folder)</code>, <code>torch.export.load"
        "(folder/model.pt2)</code> or ONNX Runtime; <code>rlnas predict folder FILES</code> on images or rows."
        f"</p>{embedded}</section>"
    )


def _search_scores(runs: Sequence[Run]) -> str:
    """What the search-time scores of these runs are."""
    kinds = {run.config.evaluation for run in runs}
    parts = []
    if "train" in kinds:
        parts.append("Proxy: scores measured during the search (short training, validation split).")
    if "oneshot" in kinds:
        parts.append("Supernet: sub-networks scored with the shared weights of a one-shot search (validation split).")
    return " ".join(parts)


def top_table(run: Run, k: int = 10) -> str:
    s = run.score
    short = "supernet val" if run.config.evaluation == "oneshot" else "proxy val"
    seconds = "score s" if run.config.evaluation == "oneshot" else "train s"
    header = ["rank", "trial", "reward", f"{short} {s}", "params", "FLOPs", "latency ms", seconds, "architecture"]
    rows = []
    for i, r in enumerate(run.top(k), start=1):
        arch = architecture_line(r.architecture)
        rows.append(
            [
                i,
                r.number,
                r.reward,
                r.metrics.get(run.score_key),
                r.metrics.get("params"),
                r.metrics.get("flops"),
                r.metrics.get("latency_ms"),
                r.metrics.get("train_seconds", r.duration_s),
                arch,
            ]
        )
    numeric = [True] * 8 + [False]
    return f"<section><h2>Top {len(rows)} trials by reward</h2>{_html_table(header, rows, numeric)}</section>"


def runs_table(runs: Sequence[Run]) -> str:
    header = [
        "run",
        "strategy",
        "seed",
        "trials",
        "best reward",
        "search-time val of best",
        "final test (mean ± std over repeats)",
        "wall s",
    ]
    rows = []
    for run, label in zip(runs, run_labels(runs), strict=True):
        best = run.best()
        final = "–"
        if run.export is not None:
            s = run.export.get("score", run.score)
            mean = run.export.get(f"test_{s}_mean", run.export.get(f"test_{s}"))
            repeats = len(run.export.get(f"test_{s}_repeats", []))
            spread = f" ± {run.export.get(f'test_{s}_std', 0.0):.4f} ({repeats} trainings)" if repeats > 1 else ""
            final = f"{mean:.4f}{spread}"
        rows.append(
            [
                label,
                run.config.strategy.name,
                run.config.seed,
                len(run.records),
                "–" if best is None else f"{best.reward:.4f}",
                "–" if best is None else _metric(best, run.score_key),
                final,
                format_value(float(run.summary.get("search_seconds", float("nan")))),
            ]
        )
    numeric = [False, False, True, True, True, True, False, True]
    return f"<section><h2>Runs</h2>{_html_table(header, rows, numeric)}</section>"


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1f3a5f;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.8;font-size:13px}main{padding:16px 32px;max-width:1300px}
section{background:#fff;border-radius:8px;padding:14px 20px;margin:14px 0;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h2{font-size:17px;margin:4px 0 10px}h3{font-size:14px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:4px 0}th,td{padding:4px 10px;border-bottom:1px solid #e3e6ea;
text-align:left;vertical-align:top}thead th{background:#eef1f5;position:sticky;top:0}td.num{text-align:right;
font-variant-numeric:tabular-nums}table.kv th{background:none;color:#555;font-weight:600;white-space:nowrap}
img{max-width:100%;height:auto}p.note{color:#555;font-size:12px;margin:2px 0 8px}pre{font-size:12px;
background:#f6f8fa;padding:10px;overflow:auto;max-height:400px}details{margin-top:10px}
a{color:#1f5fa8}
"""


def _image(title: str, path: Path, note: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f"<section><h2>{html.escape(title)}</h2><p class='note'>{html.escape(note)}</p>"
        f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'></section>"
    )


def report(runs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the report of one run (into RUN/report, or ``out``) or the comparison of several (into ``out``)."""
    paths = [Path(r) for r in runs]
    if len(paths) > 1 and out is None:
        raise UserError("comparing several runs needs --out DIR for the report")
    loaded = [Run.load(p) for p in paths]
    target = Path(out) if out is not None else paths[0] / REPORT_DIR
    if target.exists() and not target.is_dir():
        raise UserError(f"report folder {target} is a file; give --out a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the report folder {target} ({err}); give a writable --out") from None

    def build(folder: Path) -> None:  # the files go to ``folder``; links are relative to ``target``
        sections: list[str] = []
        if len(loaded) == 1:
            run = loaded[0]
            with open_run(run.path, read_only=True)[1] as store:
                store.to_csv(folder / "trials.csv")
            write_excel(run.records, folder / "trials.xlsx")
            sections.append(summary_card(run))
            sections.append(export_section(run, target))
            sections.append(top_table(run))
            ranked = list(importances(run))
            images = optuna_plots(run, folder, ranked)
            for metric in ("params", "latency_ms"):
                image = plot_pareto(run, metric, folder / f"pareto_{metric}.png")
                if image is not None:
                    images.append(
                        (f"Pareto front: proxy score vs {metric}", image, "higher and further left is better")
                    )
            curves = plot_curves(run, folder / "curves.png")
            if curves is not None:
                images.append(
                    (
                        "Validation curves of the children",
                        curves,
                        "the validation score after each epoch of each child; the best five by reward labelled",
                    )
                )
            if run.export is not None:
                boxes = plot_repeats(run.export, folder / "repeats.png")
                if boxes is not None:
                    images.append(
                        (
                            "Repeated trainings of the top configurations",
                            boxes,
                            "re-scoring on the validation split and final trainings on the test split",
                        )
                    )
            policy = plot_policy(policy_history(run.path), run.decisions, folder / "policy.png")
            if policy is not None:
                images.append(
                    (
                        "Controller policy over the search",
                        policy,
                        "decisions in space order; blank: the decision was not taken in the sampled episodes",
                    )
                )
            sections += [_image(*item) for item in images]
            title = f"rlnas report: {run.path.name}"
            links = "<a href='trials.csv'>trials.csv</a> · <a href='trials.xlsx'>trials.xlsx</a>"
        else:
            sections.append(runs_table(loaded))
            image = plot_runs(loaded, folder / "runs.png")
            sections.append(_image("Best reward so far", image, "one curve per run: strategy and seed"))
            title = "rlnas comparison: " + ", ".join(run_labels(loaded))
            links = ""
        (folder / "index.html").write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><header><h1>{html.escape(title)}</h1>"
            f"<p>{_search_scores(loaded)} Final: the exported model on the test split. {links}</p></header>"
            f"<main>{''.join(sections)}</main></body></html>"
        )

    atomic.replace_files(build, target, last="index.html")
    return target
