"""Command-line interface: ``rlnas search | export | evaluate | trials``.

Only this module prints. User mistakes (bad config, missing data, unknown run directory) end with a
one-paragraph message on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlnas import __version__
from rlnas.cli_run import EXIT_INTERRUPTED, EXIT_USER_ERROR, export_command, run_search
from rlnas.errors import FaultError, UserError
from rlnas.formatting import to_json


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
    config = load_config(args.config, _data_overrides(args.data) + _overrides(args, flags))
    return run_search(Search(config, args.run_dir), args)


def _proxies(args: argparse.Namespace) -> int:
    from rlnas.config import load_config
    from rlnas.evaluation.ranking import proxy_ranking

    if args.archs < 3:
        raise UserError(f"--archs {args.archs}: a rank correlation needs at least 3 architectures")
    _check_output_file("--json", None if args.json is None else str(args.json))
    config = load_config(args.config, _data_overrides(args.data) + [*(args.set or [])])

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\r{done}/{total} architectures", end="", file=sys.stderr, flush=True)

    result = proxy_ranking(config, args.archs, args.seed, progress)
    if not args.quiet:
        print(file=sys.stderr)
    print(
        f"{result['architectures']} architectures of {result['config']} on {result['dataset']} (seed {args.seed}); "
        f"Kendall tau against the trained validation {result['score']}"
    )
    print(f"{'proxy':<12}{'tau':>8}{'s/arch':>10}")
    for name, tau in result["kendall_tau"].items():
        print(f"{name:<12}{tau:>8.3f}{result['proxy_seconds_per_architecture'][name]:>10.4f}")
    print(f"{'training':<12}{'':>8}{result['train_seconds_per_architecture']:>10.2f}")
    if args.json:
        Path(args.json).write_text(to_json(result))
    return 0


def _config(args: argparse.Namespace) -> int:
    from rlnas.shipped import find_config, shipped_configs

    if args.name is not None:
        print(find_config(args.name, "rlnas config NAME").read_text(), end="")
        return 0
    for name, path in shipped_configs().items():
        first = path.read_text().splitlines()[0].lstrip("# ") if path.stat().st_size else ""
        print(f"{name:<14} {first}")
    print("use one with: rlnas search --config NAME (or copy it: rlnas config NAME > my.yaml)")
    return 0


def _data_overrides(path: Path | None) -> list[str]:
    """``--data PATH``: a folder of class subfolders, an .npz file or a .csv table."""
    if path is None:
        return []
    kind = "folder" if path.is_dir() else {".npz": "arrays", ".csv": "csv"}.get(path.suffix.lower())
    if kind is None:
        raise UserError(
            f"--data {path}: give a folder of class subfolders, an .npz file or a .csv file "
            f"({'it does not exist' if not path.exists() else 'unknown kind of file'})"
        )
    return [f"dataset.name={kind}", f"dataset.path={json.dumps(str(path))}"]


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


def _evaluate(args: argparse.Namespace) -> int:
    from rlnas.config import USER_DATASETS
    from rlnas.data import dataset_config, load_dataset
    from rlnas.evaluation.train import scores
    from rlnas.exporter import load_export_info, load_model

    info = load_export_info(args.export)
    settings = dict(info["dataset"])
    if args.dataset:
        settings = {k: v for k, v in settings.items() if k in ("val_fraction", "test_fraction", "split_seed")}
        settings["name"] = args.dataset
    if args.data_dir:
        settings["path" if settings["name"] in USER_DATASETS else "data_dir"] = args.data_dir
    config = dataset_config(**settings)
    if config.name == "csv" and info.get("preprocessing"):
        from rlnas.data.table import load_csv

        dataset = load_csv(config, fitted=info)  # the stored encoding: columns by name, classes by name
    else:
        dataset = load_dataset(config)
    if list(dataset.input_shape) != list(info["input_shape"]):
        raise UserError(
            f"the model takes inputs of shape {info['input_shape']} but dataset {dataset.name!r} has "
            f"{list(dataset.input_shape)}; evaluate on the dataset the model was searched on"
        )
    trained = info.get("class_names")
    if dataset.task == "classification" and trained and list(dataset.class_names) != list(trained):
        raise UserError(
            f"the model's classes are {list(trained)} but dataset {dataset.name!r} has {list(dataset.class_names)}; "
            "evaluate on data with the same class names (folder names, labels) the model was trained on"
        )
    result = scores(load_model(args.export), dataset.split(args.split), dataset.task)
    if args.json:
        examples = len(dataset.split(args.split))
        print(to_json({**result, "dataset": dataset.name, "split": args.split, "examples": examples}, indent=None))
    else:
        print(f"{dataset.name} {args.split} " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
    return 0


def _report(args: argparse.Namespace) -> int:
    from rlnas.report import report

    if len(args.runs) > 1 and args.out is None:
        raise UserError("comparing several runs needs --out DIR for the report")
    target = report(args.runs, args.out)
    print(f"report: {target / 'index.html'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import csv
    import io

    from rlnas import atomic
    from rlnas.predict import predict, predict_table

    _check_output_file("--out", None if args.out is None else str(args.out))
    if args.out is not None and args.out.exists() and not os.access(args.out, os.W_OK):
        raise UserError(f"--out {args.out} is read-only; make it writable or choose another file")
    files = list(args.inputs)
    text = io.StringIO()
    if len(files) == 1 and files[0].suffix.lower() == ".csv":
        header, rows = predict_table(args.export, files[0])
        if args.json:
            text.write(to_json([dict(zip(header, row, strict=True)) for row in rows]) + "\n")
        else:
            csv.writer(text).writerows([header, *rows])
        count = len(rows)
    else:
        predictions = predict(args.export, files, invert=args.invert)
        count = len(predictions)
        if args.json:
            text.write(to_json([p.__dict__ for p in predictions]) + "\n")
        elif args.out is not None:  # a file gets a table: path, class name, probability, class index
            writer = csv.writer(text)
            writer.writerow(["path", "prediction", "probability", "label"])
            writer.writerows([p.path, p.name, f"{p.probability:.4f}", p.label] for p in predictions)
        else:
            text.writelines(f"{p.path}: {p.name} (p = {p.probability:.3f})\n" for p in predictions)
    if args.out is None:
        print(text.getvalue(), end="")
        return 0
    atomic.write_text(args.out, text.getvalue())
    print(f"{count} predictions written to {args.out}", file=sys.stderr)
    return 0


TRIAL_COLUMNS = "number,status,reward,score,params,flops,latency_ms,duration_s,architecture"


def _trials(args: argparse.Namespace) -> int:
    from rlnas.evaluation.base import score_metric
    from rlnas.formatting import architecture_line, format_value, text_table
    from rlnas.rundir import open_run

    if args.top is not None and args.top < 1:
        raise UserError(f"--top {args.top}: give a positive number of trials, e.g. --top 10")
    _, store = open_run(args.run, read_only=True)
    with store:
        records = store.top_k(args.top) if args.top else store.trials()
    rows = [r.flat() for r in records]
    if args.json:
        print(to_json(rows))
        return 0
    score = next((name for row in rows if (name := score_metric(row)) is not None), "val_accuracy")
    columns = [score if c == "score" else c for c in (c.strip() for c in args.columns.split(",")) if c]
    known = {"architecture", *(k for row in rows for k in row)}
    if args.columns == TRIAL_COLUMNS:
        columns = [c for c in columns if c in known]  # e.g. no latency in a one-shot search
    unknown = [c for c in columns if c not in known and rows]
    if unknown:
        raise UserError(f"--columns: unknown column(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    table = []
    for record, row in zip(records, rows, strict=True):
        cells = []
        for c in columns:
            if c == "architecture":
                cells.append(architecture_line(record.architecture))
            else:
                value = row.get(c, "")
                cells.append(f"{value:.4f}" if isinstance(value, float) and c != "latency_ms" else format_value(value))
        table.append(cells)
    width = None if args.wide else shutil.get_terminal_size().columns
    print(text_table(columns, table, width))
    return 0


def _nb201_table(args: argparse.Namespace) -> int:
    from rlnas.evaluation.table import write_nats_table

    _check_output_file("--out", str(args.out))
    rows = write_nats_table(args.source, args.out, args.dataset)
    print(f"wrote {rows} architectures to {args.out}; compare strategies on it: rlnas benchmark --table {args.out}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of integers like 25,50,100") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive integers, e.g. 25,50,100")
    return values


def _check_output_file(flag: str, value: str | None) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, or in a missing folder."""
    if not value:
        return
    path = Path(value)
    if path.is_dir():
        example = path / {"--json": "results.json", "--plot": "benchmark.png"}.get(flag, "predictions.csv")
        raise UserError(f"{flag} {value} is a folder; give a file name, e.g. {example}")
    if not path.parent.is_dir():
        raise UserError(f"{flag} {value}: the folder {path.parent} does not exist; create it or choose another path")


def _benchmark(args: argparse.Namespace) -> int:
    from rlnas.benchmark import compare, plot_curves

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        raise UserError(f"--strategies {args.strategies!r} names no strategy; give e.g. --strategies ppo,random")
    for flag, value in (("--json", args.json), ("--plot", args.plot)):
        _check_output_file(flag, value)
    if args.seeds < 1 or args.first_seed < 0:
        raise UserError(f"--seeds {args.seeds} --first-seed {args.first_seed}: give --seeds >= 1 and --first-seed >= 0")
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: give at least 1 process")
    total = len(strategies) * args.seeds * len(args.budgets)
    done = 0

    def progress(run: Any) -> None:
        nonlocal done
        done += 1
        if not args.quiet:
            print(f"\r{done}/{total} runs", end="", file=sys.stderr, flush=True)

    result = compare(
        args.table, strategies, args.budgets, args.seeds, args.workers, args.set or [], progress, args.first_seed
    )
    if not args.quiet:
        print(file=sys.stderr)
    budgets = [str(b) for b in args.budgets]
    print(f"{'strategy':<22}" + "".join(f"{b:>16}" for b in budgets) + f"{'s/run':>8}")
    for strategy, row in result["summary"].items():
        cells = "".join(f"{row[b]['mean']:>9.2f} ± {row[b]['std']:<4.2f}" for b in budgets)
        print(f"{strategy:<22}{cells}{result['seconds_per_run'][strategy]:>8.2f}")
    first, others = strategies[0], [s for s in result["summary"] if s != strategies[0]]
    if others:
        print(f"margin of {first} (mean difference ± standard error, paired by seed):")
        for strategy in others:
            cells = "".join(_lead(result["summary"][strategy][b]["margin"]) for b in budgets)
            print(f"{'  over ' + strategy:<22}{cells}")
    optimum = result["optimum"]
    print(f"optimum of the table: test {optimum['test_acc_200ep']:.2f} ({optimum['arch']})")
    print(f"n = {args.seeds} seeds per strategy and budget, from seed {args.first_seed}")
    if args.json:
        Path(args.json).write_text(to_json(result["summary"]))
        print(f"JSON: {args.json}")
    if args.plot:
        print(f"plot: {plot_curves(result, args.plot)}")
    return 0


def _lead(margin: dict[str, Any]) -> str:
    if margin["mean"] is None:
        return f"{'-':>16}"
    se = f" ± {margin['se']:.3f}" if margin["se"] is not None else ""
    return f"{margin['mean']:>+8.3f}{se:<8}"


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


def _verbosity(parser: argparse.ArgumentParser, top: bool) -> None:
    """-v / -q before or after the subcommand (``rlnas -q search`` and ``rlnas search -q``)."""
    default: Any = False if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log every trial")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")


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
