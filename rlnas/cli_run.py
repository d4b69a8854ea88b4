"""The command line's search and export: progress bars, the messages of an interrupted search, the summary
of the best child and of the export. Part of the CLI (it prints)."""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rlnas.formatting import to_json

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def run_search(search: Any, args: argparse.Namespace) -> int:
    """Run a prepared search with a progress bar, report it, export the best architecture."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from rlnas.formatting import architecture_text
    from rlnas.loop_state import cost
    from rlnas.mirror import storage_url

    config = search.config
    run_dir = search.run_dir
    done_before = sum(
        cost(t.metrics, pruned=config.budget.pruned) for t in search.store.trials() if t.status != "INFEASIBLE"
    )
    print(f"run directory: {run_dir}", file=sys.stderr)
    if config.logging.tensorboard:
        print(f"watch it live: tensorboard --logdir {run_dir / 'tensorboard'}", file=sys.stderr)
        print(f"  every child: tensorboard --logdir {run_dir / 'hparams'} --port 6007  (HPARAMS tab)", file=sys.stderr)
    if config.logging.optuna:
        print(f"  with Optuna: optuna-dashboard {shlex.quote(storage_url(run_dir))}", file=sys.stderr)
    total = config.budget.evaluations
    bar = tqdm(
        total=total,
        initial=min(done_before, total),
        unit="child",
        file=sys.stderr,
        disable=args.quiet,
        bar_format="search {percentage:3.0f}%|{bar}| {desc}",  # the figures (desc) with no separator of tqdm's
    )
    status = _SearchStatus(done_before, total, time.monotonic())
    bar.set_description_str(status.text(), refresh=False)
    interrupted = 0  # the signal that stopped the search

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal interrupted
        if interrupted:
            return  # a second Ctrl-C while stopping: the checkpoint being written is finished first
        interrupted = signum
        raise KeyboardInterrupt

    def progress(done: float, total: int, record: Any) -> None:
        if interrupted:  # a Ctrl-C raised where Python drops exceptions (e.g. in a __del__): stop here instead
            raise KeyboardInterrupt
        status.finished(done, search.logger.best_reward, record.reward)
        bar.n = min(float(done), total)
        bar.set_description_str(status.text())

    def activity(evaluations: float) -> None:  # the bar moves while children train; the counts stay whole
        if not interrupted:
            bar.n = min(evaluations, total)
            bar.set_description_str(status.text())

    search.progress = progress
    search.activity = activity
    main_thread = threading.current_thread() is threading.main_thread()
    # Ctrl-C, and SIGTERM (schedulers, docker stop): stop cleanly, every finished trial kept
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        with logging_redirect_tqdm():
            result = search.run()
    except KeyboardInterrupt:
        bar.close()  # before the message: a bar redrawn under it would hide it
        kept = "the controller is checkpointed; " if config.strategy.name == "ppo" else ""
        what = "terminated (SIGTERM)" if interrupted == signal.SIGTERM else "interrupted"
        print(
            f"\n{what}: {len(search.store)} finished trials are saved in {run_dir}; {kept}"
            f"continue with: rlnas resume {run_dir}",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if interrupted == signal.SIGTERM else EXIT_INTERRUPTED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        bar.close()
        search.close()
    pruned = f" ({result.pruned} stopped early by the pruner)" if result.pruned else ""
    print(
        f"search finished: {result.evaluations} children evaluated{pruned} in {result.seconds:.0f} s "
        f"({result.stop_reason})"
    )
    if result.best is None:
        print(f"no child trained successfully; nothing to export. {_failures(run_dir)}", file=sys.stderr)
        return 1
    best = result.best
    from rlnas.evaluation.base import score_metric

    score = "r2" if "val_r2" in best.metrics or "supernet_val_r2" in best.metrics else "accuracy"
    name = score_metric(best.metrics) or f"val_{score}"
    label = {"val": "proxy val", "supernet": "supernet-estimated val"}[name.split("_")[0]]
    print(
        f"best trial {best.number}: reward {best.reward:.4f}, {label} {score} "
        f"{best.metrics.get(name, float('nan')):.4f}, params {int(best.metrics.get('params', 0)):,}"
    )
    print(_indent(architecture_text(best.architecture, shutil.get_terminal_size().columns - 2)))
    if config.export.enabled:
        metrics = _export_with_bar(result.run_dir, search.prepared.dataset if search.prepared else None, args)
        print(
            f"exported to {result.run_dir / 'export'}: final test {score} {metrics[f'test_{score}']:.4f} "
            f"({label} {score} during search {metrics[f'val_{score}']:.4f})"
        )
        if len(metrics[f"test_{score}_repeats"]) > 1:
            print(
                f"  over {len(metrics[f'test_{score}_repeats'])} final trainings: "
                f"{metrics[f'test_{score}_mean']:.4f} ± {metrics[f'test_{score}_std']:.4f}"
            )
    print(f"TensorBoard: tensorboard --logdir {result.run_dir / 'tensorboard'}")
    print(f"report: rlnas report {result.run_dir}")
    return 0


class _SearchStatus:
    """The figures beside the search's bar: the children done (a pruned one counts its share of training), the
    best and the last reward, and the time left
    estimated from the children finished in this session (their mean wall time, workers included)."""

    def __init__(self, done: float, total: int, started: float) -> None:
        self.done, self.total, self.started, self.first = done, total, started, done
        self.best: float | None = None
        self.last: float | None = None

    def finished(self, done: float, best: float, last: float) -> None:
        self.done, self.best, self.last = done, best, last

    def text(self) -> str:
        from tqdm import tqdm

        elapsed = time.monotonic() - self.started
        done = f"{self.done:.0f}" if abs(self.done - round(self.done)) < 1e-9 else f"{self.done:.1f}"
        parts = [f"{done}/{self.total} children", f"{tqdm.format_interval(elapsed)} elapsed"]
        if self.done > self.first and self.done < self.total:
            left = elapsed / (self.done - self.first) * (self.total - self.done)
            parts.append(f"about {tqdm.format_interval(left)} left")
        if self.best is not None and self.last is not None:
            parts.append(f"best reward {self.best:.4f}, last {self.last:.4f}")
        return ", ".join(parts)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _failures(run_dir: Path) -> str:
    """The commonest errors of a run's failed children, and where to see them all."""
    from collections import Counter

    from rlnas.rundir import open_run

    _, store = open_run(run_dir, read_only=True)
    with store:
        errors = Counter(t.error or "no error recorded" for t in store.trials() if t.status == "FAILED")
    common = "; ".join(f"{n} x {error}" for error, n in errors.most_common(3))
    return f"Failed children: {common} (all of them: rlnas trials {shlex.quote(str(run_dir))})"


def _export_with_bar(run_dir: Path, data: Any, args: argparse.Namespace, epochs: int | None = None) -> dict[str, Any]:
    """``export_run`` with a bar over the epochs of its re-scoring and final trainings."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from rlnas.exporter import export_plan, export_run

    print(
        f"export: {export_plan(run_dir, epochs).describe()} (--no-export skips it; --set export.epochs=N "
        "or `rlnas export RUN --epochs N` changes it)",
        file=sys.stderr,
    )
    bar = tqdm(total=1, unit="epoch", desc="export", file=sys.stderr, disable=args.quiet)

    def progress(what: str, done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.set_description(what, refresh=False)
        bar.refresh()

    try:
        with logging_redirect_tqdm():
            return export_run(
                run_dir, epochs=epochs, data_dir=getattr(args, "data_dir", None), data=data, progress=progress
            )
    except KeyboardInterrupt:
        from rlnas.rundir import FINALS_DIR

        bar.close()
        kept = len(list((Path(run_dir) / FINALS_DIR).glob("*.pt")))
        unfinished = len(list((Path(run_dir) / FINALS_DIR).glob("*.unfinished")))
        partly = f" and {unfinished} unfinished one(s) saved at an epoch end" if unfinished else ""
        print(
            f"\nexport interrupted: every trial is saved, and {kept} finished final training(s){partly} in "
            f"{Path(run_dir) / FINALS_DIR}; continue with: rlnas export {shlex.quote(str(run_dir))}"
            + ("" if epochs is None else f" --epochs {epochs}"),
            file=sys.stderr,
        )
        raise SystemExit(EXIT_INTERRUPTED) from None
    finally:
        bar.close()


def export_command(args: argparse.Namespace) -> int:
    metrics = _export_with_bar(args.run, None, args, epochs=args.epochs)
    score = metrics["score"]
    print(to_json(metrics) if args.json else f"final test {score} {metrics[f'test_{score}']:.4f}")
    return 0
