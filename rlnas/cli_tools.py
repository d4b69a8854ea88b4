"""The command-line tools around a search: evaluate, predict, trials, report, benchmark, proxies, config,
nb201-table (their handlers; the parser is in :mod:`rlnas.cli`). Only the CLI prints."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from rlnas.errors import UserError
from rlnas.formatting import to_json


def data_overrides(path: Path | None) -> list[str]:
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


MAX_PROXY_ARCHS = 10_000  # rlnas proxies --archs: drawing more distinct ones can take longer than any training


def _proxies(args: argparse.Namespace) -> int:
    from rlnas.config import load_config
    from rlnas.evaluation.ranking import proxy_ranking

    if args.archs < 3:
        raise UserError(f"--archs {args.archs}: a rank correlation needs at least 3 architectures")
    if args.archs > MAX_PROXY_ARCHS:
        raise UserError(
            f"--archs {args.archs}: at most {MAX_PROXY_ARCHS:,} (each one is trained; 50-200 architectures give a "
            "Kendall tau to about ±0.1)"
        )
    _check_output_file("--json", None if args.json is None else str(args.json))
    config = load_config(args.config, data_overrides(args.data) + [*(args.set or [])])

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
        _write_output("--json", args.json, to_json(result))
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


def _cache(args: argparse.Namespace) -> int:
    from rlnas.data import cache

    where = cache.root(args.cache_dir) / "folders"
    if where.parent.exists() and not where.parent.is_dir():
        raise UserError(f"--cache-dir {where.parent} is a file; give the cache's folder")
    limit = cache.limit_bytes()
    if not where.is_dir():
        print(f"{where}: no cache there (the folder does not exist): nothing to {'clear' if args.clear else 'show'}")
        return 0
    if args.clear:
        count, size = cache.clear(where)
        print(f"removed {count} cached folder(s), {size / 1e9:.2f} GB, from {where}")
        return 0
    paths = cache.entries(where)
    print(f"{where}: {len(paths)} cached folder(s), {cache.size(paths) / 1e9:.2f} GB of {limit / 1e9:.1f} GB allowed")
    print(f"least recently used go first past the limit (set {cache.LIMIT_VARIABLE}); empty it: rlnas cache --clear")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rlnas.config import USER_DATASETS
    from rlnas.data import dataset_config, load_dataset
    from rlnas.evaluation.train import scores
    from rlnas.exported import load_export_info, load_model

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
    # the final training fits train+validation: on the search's own data only the test split is held out
    held_out = args.split == "test" or args.dataset not in (None, info["dataset"]["name"]) or args.data_dir is not None
    if args.json:
        examples = len(dataset.split(args.split))
        summary = {**result, "dataset": dataset.name, "split": args.split, "examples": examples, "held_out": held_out}
        print(to_json(summary, indent=None))
    else:
        print(f"{dataset.name} {args.split} " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
    if not held_out:
        print(
            f"note: the exported model was trained on the {args.split} split too (its final training fits "
            "train+validation), so this score is not held out; --split test is",
            file=sys.stderr,
        )
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
    _write_output("--out", args.out, text.getvalue(), errors="surrogateescape")  # image names as their bytes
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
    if not columns:
        raise UserError(f"--columns {args.columns!r} names no column; give e.g. --columns number,reward,params")
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
    if path.is_symlink():  # written by replacing: the link itself (e.g. /dev/stdout) would be replaced
        raise UserError(
            f"{flag} {value} is a symbolic link (to {os.readlink(path)}); give the file it points to or a new file name"
        )
    if path.exists() and not path.is_file():  # a device would be replaced by a file
        raise UserError(f"{flag} {value} is not a regular file (a device, pipe or link to one); give a file name")


def _write_output(flag: str, path: str | Path, text: str, errors: str = "strict") -> None:
    """An output file the user named, written whole (atomically) or refused with the reason."""
    from rlnas import atomic
    from rlnas.errors import DiskFullError

    try:
        atomic.write_text(Path(path), text, errors=errors)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise DiskFullError(f"no space left for {flag} {path}; free some space and run again") from None
        raise UserError(f"{flag} {path} cannot be written ({err.strerror}); choose another path") from None


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
    optimum = result["optimum"]
    first = strategies[0]
    summary, per_run = result["summary"], result["seconds_per_run"]
    print("test accuracy of the selected architecture (mean ± std; the one with the best validation it evaluated):")
    print(f"{'strategy':<22}" + "".join(f"{b:>16}" for b in budgets))
    _block(
        summary,
        budgets,
        lambda cell: f"{cell['mean']:>9.2f} ± {cell['std']:<4.2f}",
        lambda cell: cell["margin"],
        f"margin of {first} (mean difference ± standard error, paired by seed):",
        lambda strategy: f"{per_run[strategy]:>8.2f} s/run",
    )
    print(f"regret on the searched metric (the table's best validation {optimum['valid_acc_12ep']:.2f} - best found):")
    _block(
        summary,
        budgets,
        lambda cell: f"{cell['regret']['mean']:>9.3f} ± {cell['regret']['std']:<5.3f}",
        lambda cell: cell["regret"]["margin"],
        f"regret lead of {first} (the other's regret - {first}'s, ± standard error, paired by seed):",
    )
    print(
        f"the table's best-validation architecture: validation {optimum['valid_acc_12ep']:.2f}, test "
        f"{optimum['test_acc_200ep']:.2f} ({optimum['arch']}); the best test accuracy in the table: "
        f"{result['best_test']:.2f}"
    )
    print(f"n = {args.seeds} seeds per strategy and budget, from seed {args.first_seed}")
    if args.json:
        _write_output("--json", args.json, to_json(result["summary"]))
        print(f"JSON: {args.json}")
    if args.plot:
        print(f"plot: {plot_curves(result, args.plot)}")
    return 0


def _block(
    summary: dict[str, Any],
    budgets: list[str],
    cell: Any,
    margin: Any,
    margin_title: str,
    tail: Any = None,
) -> None:
    """One row per strategy (``cell`` of each budget), then each later strategy's ``margin`` cells."""
    for strategy, row in summary.items():
        print(f"{strategy:<22}" + "".join(cell(row[b]) for b in budgets) + (tail(strategy) if tail else ""))
    for n, strategy in enumerate(list(summary)[1:]):
        if n == 0:
            print(margin_title)
        print(f"{'  over ' + strategy:<22}" + "".join(_lead(margin(summary[strategy][b])) for b in budgets))


def _lead(margin: dict[str, Any]) -> str:
    if margin["mean"] is None:
        return f"{'-':>16}"
    se = f" ± {margin['se']:.3f}" if margin["se"] is not None else ""
    return f"{margin['mean']:>+8.3f}{se:<8}"
