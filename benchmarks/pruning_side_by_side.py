"""A search end to end with early stopping of children (``pruning``) against the same search without it:
same config, seed and budget, one run each, one after the other; then every pruned child is trained in full
to see whether the pruner stopped one that would have been among the best.

    python benchmarks/pruning_side_by_side.py [--config default] [--rule median] [--screen grad_norm] \
        [--set KEY=VALUE ...] [--work DIR] [--out docs/pruning_digits.json] [--runs off,on]

The first run switches the pruner off (``pruning.rule=none``, also where the config has it on), the second
sets ``--rule``. Both runs count a pruned child as one whole evaluation (``budget.pruned=whole``), so they get
the same number of children; ``--screen`` also switches on zero-cost screening in the second run. ``--runs on`` runs the
second alone (to try pruner settings against an off run made before with the same config and seed).

Prints per run: the search's wall time, the whole command's, the children trained (and pruned), the budget
spent, the best reward, the export's test accuracy; and how many pruned children, trained in full, would rank
in the top 10 by reward of all the run's children.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rlnas.evaluation.base import COMPLETE, PRUNED
from rlnas.evaluation.objective import Objective
from rlnas.evaluation.trainer import TrainingEvaluator
from rlnas.loop_state import cost
from rlnas.prepare import prepare
from rlnas.rundir import open_run


def search(config: str, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    command = [sys.executable, "-c", "import sys; from rlnas.launch import main; sys.exit(main())", "-q", "search"]
    command += ["--config", config, "--run-dir", str(run_dir)]
    for item in overrides:
        command += ["--set", item]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    summary = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "export" / "metrics.json").read_text())
    _, store = open_run(run_dir)
    trials = [t for t in store.trials() if t.status != "INFEASIBLE"]
    store.close()
    return {
        "end_to_end_seconds": round(seconds, 1),
        "search_seconds": round(float(summary["search_seconds"]), 1),
        "children": len(trials),
        "pruned": sum(t.status == PRUNED for t in trials),
        "budget_spent": round(sum(cost(t.metrics) for t in trials), 3),
        "best_reward": round(max(t.reward for t in trials if t.status == COMPLETE), 4),
        "test_accuracy": metrics.get("test_accuracy"),
        "test_accuracy_mean": metrics.get("test_accuracy_mean"),
    }


def pruned_in_top(run_dir: Path, top: int = 10) -> dict[str, Any]:
    """Train every pruned child of ``run_dir`` in full (the search's own seeded training) and rank all the
    run's children by the reward of their full training."""
    config, store = open_run(run_dir)
    trials = [t for t in store.trials() if t.status in (COMPLETE, PRUNED)]
    max_complexity = float(store.get_meta("max_complexity") or 1.0)
    store.close()
    prepared = prepare(config)
    evaluator = TrainingEvaluator(prepared.trainer, Objective(config.objective, max_complexity), config.seed)
    full = {t.number: t.reward for t in trials if t.status == COMPLETE}
    for t in trials:
        if t.status == PRUNED:
            full[t.number] = evaluator.evaluate(t.architecture).reward
    best = sorted(full, key=lambda n: -full[n])[:top]
    stopped = [t.number for t in trials if t.status == PRUNED]
    return {"pruned_in_top": sorted(set(best) & set(stopped)), "top": best, "pruned": stopped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default")
    parser.add_argument("--rule", default="median")
    parser.add_argument("--screen", help="zero-cost proxy that screens the candidates of the second run")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--runs", default="off,on", help="which of the two runs to make (default both)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rlnas-pruning-"))
    results: dict[str, Any] = {"config": args.config, "overrides": args.set, "rule": args.rule}
    results["screen"] = args.screen
    on = [f"pruning.rule={args.rule}"] + ([f"strategy.zero_cost_screen={args.screen}"] if args.screen else [])
    runs = args.runs.split(",")
    unknown = sorted(set(runs) - {"off", "on"})
    if unknown:
        parser.error(f"--runs {args.runs!r}: unknown run(s) {unknown}; use off, on or off,on")
    for name, extra in (("off", ["pruning.rule=none"]), ("on", on)):
        if name not in runs:
            continue
        run_dir = work / name
        shutil.rmtree(run_dir, ignore_errors=True)
        results[name] = search(args.config, [*args.set, "budget.pruned=whole", *extra], run_dir)
        print(name, results[name], flush=True)
    if "on" in runs:
        results["on"]["check"] = pruned_in_top(work / "on")
    print(json.dumps(results, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
