"""The controller's choice probabilities as pictures: a snapshot per policy update for TensorBoard's IMAGES tab
(decisions x choices, the step slider walks through the updates) and the whole search's history for the
report (one row per choice, one column per update)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.rundir import TENSORBOARD_DIR

DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def policy_snapshot(probabilities: Mapping[str, Mapping[str, float]], title: str) -> np.ndarray:
    """One heatmap of the policy at an update: a row per decision (in the given order), a column per choice
    slot (a decision's choices in their natural order), each cell labelled with its choice and probability.
    Returns an RGB image (height x width x 3, uint8)."""
    plt = _pyplot()
    names = list(probabilities)
    slots = max((len(p) for p in probabilities.values()), default=1)
    grid = np.full((len(names), slots), np.nan)
    for row, name in enumerate(names):
        for col, p in enumerate(probabilities[name].values()):
            grid[row, col] = p
    width, height = 2.4 + 1.15 * slots, 1.0 + 0.32 * len(names)
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=1.5 / width, right=1 - 0.9 / width, top=1 - 0.6 / height, bottom=0.1 / height)
    image = ax.imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    for row, name in enumerate(names):
        for col, (choice, p) in enumerate(probabilities[name].items()):
            label = choice if len(choice) <= 12 else choice[:11] + "…"
            colour = "black" if p > 0.6 else "white"
            ax.text(col, row, f"{label}\n{p:.2f}", ha="center", va="center", fontsize=6.5, color=colour)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xticks(range(slots), [f"choice {i + 1}" for i in range(slots)], fontsize=7)
    ax.xaxis.tick_top()
    ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.25 / slots, pad=0.02, label="probability")
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]
    plt.close(fig)
    return rgb


def policy_history(run: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``policy/<decision>/<choice>`` scalars of the run's TensorBoard events: decision -> choice -> points."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = run / TENSORBOARD_DIR
    if not logdir.is_dir():
        return {}
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for tag in acc.Tags()["scalars"]:
        parts = tag.split("/")
        if len(parts) == 3 and parts[0] == "policy":
            out.setdefault(parts[1], {})[parts[2]] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return out


def plot_policy(
    history: dict[str, dict[str, list[tuple[int, float]]]], decisions: list[tuple[str, list[Any]]], path: Path
) -> Path | None:
    """One heatmap row block per decision (space order), one row per choice (natural order), one column per
    controller update (x: trial number), with a colorbar and the values written in the cells."""
    order = [(name, [str(c) for c in choices]) for name, choices in decisions if name in history]
    order += [(name, sorted(history[name])) for name in history if name not in dict(order)]
    if not order:
        return None
    plt = _pyplot()
    steps = sorted({s for name, _ in order for points in history[name].values() for s, _ in points})
    rows = sum(len(choices) for _, choices in order)
    fig, axes = plt.subplots(
        len(order),
        1,
        figsize=(min(16, 5 + 0.45 * len(steps)), 0.2 * rows + 0.12 * len(order) + 1.2),
        squeeze=False,
        gridspec_kw={"height_ratios": [len(c) for _, c in order]},
        layout="constrained",
    )
    image = None
    for k, (ax, (name, choices)) in enumerate(zip(axes[:, 0], order, strict=True)):
        grid = np.full((len(choices), len(steps)), np.nan)
        for i, choice in enumerate(choices):
            for step, value in history[name].get(choice, []):
                grid[i, steps.index(step)] = value
        image = ax.imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(choices)), choices, fontsize=7)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        if len(steps) <= 30:
            for (i, j), value in np.ndenumerate(grid):
                if not np.isnan(value):
                    ax.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="black" if value > 0.6 else "white",
                    )
        ticks = range(0, len(steps), max(1, len(steps) // 15))
        if k == len(order) - 1:
            ax.set_xticks(list(ticks), [str(steps[t]) for t in ticks], fontsize=7)
            ax.set_xlabel("trial number at the controller update")
        else:
            ax.set_xticks([])
    fig.colorbar(
        image, ax=axes[:, 0].tolist(), shrink=min(1.0, 12 / rows + 0.1), aspect=30, label="probability of the choice"
    )
    fig.suptitle("controller: probability of each choice, averaged over episodes sampled from the policy", fontsize=9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
