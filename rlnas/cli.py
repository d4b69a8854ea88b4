"""Command-line interface: ``rlnas search | export | evaluate | trials``.

Only this module prints. User mistakes (bad config, missing data, unknown run directory) end with a
one-paragraph message on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlnas import __version__
from rlnas.cli_run import EXIT_INTERRUPTED, EXIT_USER_ERROR, export_command, run_search
from rlnas.cli_tools import (
    TRIAL_COLUMNS,
    _benchmark,
    _cache,
    _config,
    _evaluate,
    _nb201_table,
    _predict,
    _proxies,
    _report,
    _trials,
    data_overrides,
)
from rlnas.errors import FaultError, UserError


def _overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    overrides = list(args.set or [])
    for flag, key in flags.items():
        if getattr(args, flag, None) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    if getattr(args, "ray_address", None) is not None and getattr(args, "executor", None) is None:
        overrides.append("execution.executor=ray")
    if args.no_export:
        overrides.append("export.enabled=false")
    return overrides


def _search(args: argparse.Namespace) -> int:
    from rlnas.config import load_config
    from rlnas.driver import Search

    if args.resume is not None:
        ignored = [
            flag
            for flag, value in (
                ("--config", args.config),
                ("--run-dir", args.run_dir),
                ("--seed", args.seed),
                ("--strategy", args.strategy),
                ("--evaluation", args.evaluation),
                ("--data", args.data),
            )
            if value is not None
        ]
        if ignored:
            raise UserError(
                f"--resume {args.resume} continues that run with its own config; {', '.join(ignored)} cannot change "
                "it (only --budget, --workers, --executor and --set budget.*/export.*/logging.*/execution.*); "
                "drop them, or start a new search without --resume"
            )
        return _resume(argparse.Namespace(**{**vars(args), "run": args.resume}))
    flags = {
        "budget": "budget.evaluations",
        "minutes": "budget.minutes",
        "seed": "seed",
        "strategy": "strategy.name",
        "evaluation": "evaluation",
        **EXECUTION_FLAGS,
    }
    config = load_config(args.config, data_overrides(args.data) + _overrides(args, flags))
    return run_search(Search(config, args.run_dir), args)


def _resume(args: argparse.Namespace) -> int:
    from rlnas.driver import Search

    flags = {"budget": "budget.evaluations", "minutes": "budget.minutes", **EXECUTION_FLAGS}
    return run_search(Search.resume(args.run, _overrides(args, flags)), args)


EXECUTION_FLAGS = {
    "workers": "execution.workers",
    "executor": "execution.executor",
    "ray_address": "execution.ray_address",
}


def _add_execution_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, help="children trained at the same time (execution.workers)")
    p.add_argument(
        "--executor", choices=["auto", "inprocess", "process", "ray"], help="where children train (execution.executor)"
    )
    p.add_argument(
        "--ray-address", help="an existing Ray cluster, e.g. auto or ray://head:10001 (implies --executor ray)"
    )


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of integers like 25,50,100") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive integers, e.g. 25,50,100")
    return values


def _verbosity(parser: argparse.ArgumentParser, top: bool) -> None:
    """-v / -q before or after the subcommand (``rlnas -q search`` and ``rlnas search -q``)."""
    default: Any = False if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log every trial")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")


class _HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default where it has one (not for flags, nor where the config decides)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
            and not isinstance(default, bool)
        ):
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            text += f" (default: {shown})"
        return text


def build_parser() -> argparse.ArgumentParser:
    from rlnas.strategies import NEEDS_SUPERNET, STRATEGIES

    parser = argparse.ArgumentParser(
        prog="rlnas",
        description="Neural architecture search with a MaskablePPO controller.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rlnas {__version__}")
    _verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)
    common: dict[str, Any] = {"formatter_class": _HelpFormatter}
    strategies = ", ".join(STRATEGIES)

    p = sub.add_parser("search", help="run a search, then export the best architecture", **common)
    p.add_argument(
        "--config",
        type=Path,
        help="a YAML file, or a shipped config's name (`rlnas config` lists them; default: the built-in defaults)",
    )
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override a config value (repeatable)")
    p.add_argument(
        "--run-dir", type=Path, help="run directory (default: RUNS_ROOT/<space>__<strategy>__<seed>__<time>)"
    )
    p.add_argument("--budget", type=int, help="number of child evaluations (budget.evaluations; default: the config's)")
    p.add_argument("--minutes", type=float, help="also stop after this much search time (budget.minutes)")
    p.add_argument("--seed", type=int, help="random seed (seed; default: the config's, 0 in the built-in defaults)")
    p.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        metavar="NAME",
        help=f"search strategy (strategy.name; default: the config's, ppo in the built-in defaults): {strategies}",
    )
    p.add_argument(
        "--evaluation",
        choices=["train", "oneshot"],
        help="train: every child is trained; oneshot: children are scored as sub-networks of one shared supernet "
        "(weight sharing, ENAS with ppo, SPOS with --set oneshot.path_sampling=uniform --strategy evolution)",
    )
    p.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="your data: a folder of class subfolders, an .npz file or a .csv table (dataset.name and dataset.path)",
    )
    p.add_argument("--no-export", action="store_true", help="skip the final retraining and export")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue the search in RUN (= rlnas resume RUN)")
    _add_execution_flags(p)
    _verbosity(p, top=False)
    p.set_defaults(func=_search)

    p = sub.add_parser("resume", help="continue a killed or interrupted search; finished trials are kept", **common)
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--budget", type=int, help="a new budget of evaluations (e.g. to extend a finished run)")
    p.add_argument("--minutes", type=float, help="a new time budget, counting the time spent before (budget.minutes)")
    p.add_argument(
        "--set", action="append", metavar="KEY.PATH=VALUE", help="budget.*, export.*, logging.* or execution.* only"
    )
    _add_execution_flags(p)
    p.add_argument("--no-export", action="store_true", help="skip the final retraining and export")
    _verbosity(p, top=False)
    p.set_defaults(func=_resume)

    p = sub.add_parser("export", help="retrain the best architecture of a run and export it to RUN/export", **common)
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--epochs", type=int, help="final training epochs (default: export.epochs of the run)")
    p.add_argument("--data-dir", help="where the run's data lie now, if they moved (dataset.data_dir or dataset.path)")
    p.add_argument("--json", action="store_true", help="print metrics.json")
    _verbosity(p, top=False)
    p.set_defaults(func=export_command)

    p = sub.add_parser("evaluate", help="accuracy of an exported model on a dataset split", **common)
    p.add_argument("export", type=Path, help="RUN/export or RUN/export/model.pt")
    p.add_argument("--dataset", help="dataset name (default: the one the model was searched on)")
    p.add_argument("--data-dir", help="where the data lie (dataset.data_dir or dataset.path; default: the search's)")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--json", action="store_true", help='print {"accuracy": ...} as JSON')
    _verbosity(p, top=False)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("benchmark", help="compare strategies on a tabular benchmark (NAS-Bench-201 format)", **common)
    p.add_argument("--table", required=True, type=Path, help="CSV with columns arch,valid_acc_12ep,test_acc_200ep")
    tables = ", ".join(sorted(set(STRATEGIES) - NEEDS_SUPERNET))  # a table has no supernet
    p.add_argument("--strategies", default="ppo,random,evolution", help=f"comma-separated names of: {tables}")
    p.add_argument("--budgets", type=_int_list, default=[25, 50, 100, 200, 300], help="e.g. 25,50,100,200,300")
    p.add_argument("--seeds", type=int, default=10, help="runs per strategy (seeds F..F+N-1)")
    p.add_argument("--first-seed", type=int, default=0, help="F: the first seed (e.g. to tune on held-out seeds)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel processes")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="config override for every run")
    p.add_argument("--json", type=Path, help="write {strategy: {budget: {mean, std, n, margin}}} here")
    p.add_argument("--plot", type=Path, default=Path("benchmark.png"), help="PNG of the best-so-far curves")
    _verbosity(p, top=False)
    p.set_defaults(func=_benchmark)

    p = sub.add_parser(
        "nb201-table", help="make a benchmark table from the public NATS-Bench (NAS-Bench-201) files", **common
    )
    p.add_argument("source", type=Path, help="the NATS-Bench topology folder, e.g. NATS-tss-v1_0-3ffb9-simple")
    p.add_argument("--out", type=Path, required=True, help="the CSV to write (arch,valid_acc_12ep,test_acc_200ep)")
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "ImageNet16-120"])
    _verbosity(p, top=False)
    p.set_defaults(func=_nb201_table)

    p = sub.add_parser("report", help="CSV, Excel, plots and index.html of a run (or compare several)", **common)
    p.add_argument("runs", nargs="+", type=Path, help="run directories")
    p.add_argument("--out", type=Path, help="output folder (default RUN/report; required for several runs)")
    _verbosity(p, top=False)
    p.set_defaults(func=_report)

    p = sub.add_parser("predict", help="classify image files, or predict the rows of a CSV table", **common)
    p.add_argument("export", type=Path, help="RUN/export or RUN/export/model.pt")
    p.add_argument("inputs", nargs="+", type=Path, help="image files, or one .csv table (for a table model)")
    p.add_argument(
        "--out", type=Path, help="write the predictions to this file: CSV, or JSON with --json (default: print)"
    )
    p.add_argument("--invert", action="store_true", help="dark digits on a light background (MNIST is light on dark)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _verbosity(p, top=False)
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "proxies", help="how well zero-cost proxies rank a config's architectures (Kendall tau vs training)", **common
    )
    p.add_argument("--config", type=Path, help="a YAML file or a shipped config's name (default: the defaults)")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override a config value (repeatable)")
    p.add_argument("--data", type=Path, metavar="PATH", help="your data (as for search)")
    p.add_argument("--archs", type=int, default=50, help="architectures sampled, each also trained (default 50)")
    p.add_argument("--seed", type=int, default=0, help="draws the architectures and the proxies' minibatch")
    p.add_argument("--json", type=Path, help="write every architecture's proxies and score here")
    _verbosity(p, top=False)
    p.set_defaults(func=_proxies)

    p = sub.add_parser("config", help="list the shipped configs, or print one (rlnas config mnist > my.yaml)", **common)
    p.add_argument("name", nargs="?", help="a shipped config's name (default, mnist, table, ...)")
    _verbosity(p, top=False)
    p.set_defaults(func=_config)

    p = sub.add_parser("cache", help="the decoded-image cache of image folders: where, how big; --clear", **common)
    p.add_argument("--clear", action="store_true", help="remove every cached folder")
    p.add_argument("--cache-dir", help="the cache's folder (default: $RLNAS_CACHE_DIR, else ~/.cache/rlnas)")
    _verbosity(p, top=False)
    p.set_defaults(func=_cache)

    p = sub.add_parser("trials", help="list the trials of a run", **common)
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--top", type=int, help="only the K best by reward")
    p.add_argument(
        "--columns",
        default=TRIAL_COLUMNS,
        help="comma-separated columns: number, status, reward, score (validation accuracy or R²), params, flops, "
        "latency_ms, duration_s, architecture, any metric or decision name",
    )
    p.add_argument("--wide", action="store_true", help="do not cut rows to the terminal width")
    p.add_argument("--json", action="store_true", help="print JSON (every column)")
    _verbosity(p, top=False)
    p.set_defaults(func=_trials)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # builds the strategy list: imports, where a Ctrl-C may land
    except KeyboardInterrupt:
        print("rlnas: interrupted while starting; nothing was done", file=sys.stderr)
        return EXIT_INTERRUPTED
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("rlnas").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return int(args.func(args))
    except UserError as err:
        print(f"rlnas {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except FaultError as err:  # not the user's mistake, but nothing a traceback would explain better
        print(f"rlnas {args.command}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError as err:
        if not _stdout_closed():  # a pipe of rlnas's own broke, not the terminal's
            print(
                f"rlnas {args.command}: error: {err} (a broken pipe inside rlnas); finished work is saved",
                file=sys.stderr,
            )
            return 1
        # e.g. `rlnas predict ... | head`: the reader is gone, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"rlnas {args.command}: interrupted; finished trials are saved in the run directory", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        if err.errno not in PATH_ERRORS:
            raise
        fix = PATH_ERRORS[err.errno]
        print(f"rlnas {args.command}: error: {err.filename}: {err.strerror}; {fix}", file=sys.stderr)
        return EXIT_USER_ERROR


# a path the user gave that no file can have, wherever it is first touched: the path is the user's to fix
PATH_ERRORS = {
    errno.ENAMETOOLONG: "pass a path with shorter names (at most 255 bytes each)",
    errno.ELOOP: "the path runs into a loop of symbolic links; pass another",
}


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (poll reports an error on its write end)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no file descriptor: not an OS pipe that could break
        return False
    if not hasattr(select, "poll"):  # Windows: assume the reader went away, as Python's own advice does
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


if __name__ == "__main__":
    sys.exit(main())
