"""How an exported ensemble's test accuracy grows with its members: the accuracy of its first k members, for
every k, beside member k's own.

    python benchmarks/ensemble_size.py RUN [--data-dir DIR] [--json F]

RUN is a run whose export is an ensemble (``export.ensemble_top`` > 1 or ``export.ensemble: true``). The
members keep the export's order (the re-scoring's winner first, then the search's next best), and the average
is the export's own (:class:`rlnas.models.families.Ensemble`: the mean class probability). An export with
test-time views (``export.tta``) is scored as it predicts: each member averaged over the views, and the
members without them beside. This reads the test split, as the export did; it reports, it chooses nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rlnas.evaluation.train import outputs
from rlnas.exported import load_model
from rlnas.models.families import Ensemble, ViewAverage
from rlnas.prepare import prepare
from rlnas.rundir import EXPORT_DIR, open_run


def member_scores(run: Path, data_dir: str | None = None) -> list[dict[str, float]]:
    """The test accuracy of the first k members of ``run``'s exported ensemble, and of member k alone, k = 1, 2,
    ... (each member's outputs computed once; the average as the export's: the mean class probability)."""
    config, store = open_run(run)
    store.close()
    if data_dir is not None:
        config = config.model_copy(update={"dataset": config.dataset.model_copy(update={"data_dir": data_dir})})
    dataset = prepare(config, run_dir=run).dataset
    model = load_model(run / EXPORT_DIR)
    views = model.kind if isinstance(model, ViewAverage) else None
    model = model.model if isinstance(model, ViewAverage) else model
    if not isinstance(model, Ensemble) or not model.classification:
        raise SystemExit(f"{run / EXPORT_DIR} is not an ensemble of classifiers")
    test = dataset.test
    rows: list[dict[str, float]] = [{"members": k} for k in range(1, len(model.members) + 1)]
    for suffix, kind in [("", views), ("_without_views", None)] if views else [("", None)]:
        total = torch.zeros(0)
        with torch.inference_mode():
            for row, member in zip(rows, model.members, strict=True):
                net = member if kind is None else ViewAverage(member, classification=True, kind=kind).eval()
                probs = torch.softmax(outputs(net, test.x).float(), dim=-1)
                total = probs if row["members"] == 1 else total + probs
                row["member_alone" + suffix] = float((probs.argmax(dim=1) == test.y).float().mean())
                row["accuracy" + suffix] = float((total.argmax(dim=1) == test.y).float().mean())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--data-dir", help="where the run's data lie now (dataset.data_dir)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = member_scores(args.run, args.data_dir)
    for row in rows:
        k = row["members"]
        plain = f"; without the views {row['accuracy_without_views']:.4f}" if "accuracy_without_views" in row else ""
        print(f"{k} member(s): {row['accuracy']:.4f} (member {k} alone {row['member_alone']:.4f}){plain}")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
