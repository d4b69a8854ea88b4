"""Hostile input, generated: every setting of the config given values of the wrong type, out of its range,
non-finite or absurdly large, must be refused when the config is loaded with a ConfigError that names the
setting (the CLI turns it into exit 2 before anything is written). The case count is in the test ids."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

import annotated_types as at
import pytest
from pydantic import BaseModel

from rlnas.config import RunConfig, load_config
from rlnas.errors import ConfigError

HUGE = 10**15  # "a terabyte of anything"


def _settings(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, typing.Any, list[typing.Any]]]:
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _settings(field.annotation, key + ".")
        else:
            yield key, field.annotation, list(field.metadata)


def _bad_values(annotation: typing.Any, metadata: list[typing.Any]) -> list[str]:
    """What a hostile user would try for a setting of this type (as ``--set`` text)."""
    args = typing.get_args(annotation)
    plain = [a for a in args if a is not type(None)] if args and typing.get_origin(annotation) is not list else []
    kind = plain[0] if len(plain) == 1 else annotation
    if typing.get_origin(kind) is typing.Literal:
        return ["no-such-choice", "[1, 2]", "{a: 1}"]
    if kind is bool:
        return ["maybe", "[true]"]
    if kind in (int, float):
        values = ["abc", "[1]", "{a: 1}", "true"]  # true would be taken for 1 without the check
        values += [".nan", ".inf", "-.inf"] if kind is float else ["1.5"]
        for bound in metadata:
            if isinstance(bound, at.Ge):
                values.append(str(bound.ge - 1))
            if isinstance(bound, at.Gt):
                values.append(str(bound.gt))
            if isinstance(bound, at.Le):
                values.append(str(bound.le + 1))
            if isinstance(bound, at.Lt):
                values.append(str(bound.lt))
        return values
    if typing.get_origin(annotation) is list and typing.get_args(annotation)[0] in (int,):
        return ["abc", "[abc]"]
    if typing.get_origin(annotation) is list:
        inner = typing.get_args(annotation)[0]
        if typing.get_origin(inner) is typing.Annotated:  # e.g. widths of hidden layers
            return ["abc", "[-1]", "[0]", f"[{HUGE}]", "[64, 64, 64, 64, 64, 64, 64, 64, 64]"]
    return []


CASES = [
    pytest.param(key, value, id=f"{key}={value}")
    for key, annotation, metadata in _settings(RunConfig)
    if not key.startswith("space.")  # the space section has its own generated checks in test_space.py
    for value in _bad_values(annotation, metadata)
]


def test_there_are_hundreds_of_generated_cases() -> None:
    assert len(CASES) >= 300, len(CASES)


@pytest.mark.parametrize(("key", "value"), CASES)
def test_a_bad_setting_is_refused_at_load_naming_the_setting(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, [f"{key}={value}"])
    assert key.rsplit(".", 1)[-1].rstrip("_") in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not utf-8", "not valid YAML"),
        (b"- a list\n- of things\n", "must hold a mapping of sections"),
        (b"training: {epochs: [1, 2}", "not valid YAML"),
        (b"seed: 1\ntraining: {epochs: 2}\nseed: 2\n", "the key 'seed' is given twice; keep one"),
        (None, "is a directory, not a file"),
        ("fifo", "is not a regular file"),
    ],
)
def test_an_unreadable_or_malformed_config_file_is_a_config_error(
    tmp_path: Path, content: bytes | str | None, message: str
) -> None:
    import os

    path = tmp_path / "c.yaml"
    if content is None:
        path.mkdir()  # a folder named like a config
    elif content == "fifo":
        os.mkfifo(path)  # reading it would block
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--seed", "-1"], "seed: Input should be greater than or equal to 0"),
        (["search", "--seed", str(HUGE)], "seed: Input should be less than or equal to 4294967295"),
        (["search", "--set", "dataset.split_seed=-1"], "dataset.split_seed"),
        (["search", "--set", f"strategy.ppo.net_arch=[{HUGE}]"], "strategy.ppo.net_arch.0"),
        (["search", "--set", f"dataset.image_size={HUGE}"], "sizes from 1 to 4096 pixels"),
        (["search", "--set", "space.per_layer.kernel_size=[3, 99]"], "kernel_size [99] is larger than the 8x8 input"),
        (["search", "--set", "training.epochs={a: 1, a: 2}"], "the key 'a' is given twice"),
        (["search", "--run-dir", "x" * 300], "cannot be used (File name too long); pass another to --run-dir"),
        (["resume", "x" * 300], "File name too long; pass a path with shorter names"),
        (["report", "x" * 300], "File name too long; pass a path with shorter names"),
        (["predict", "x" * 300, "a.png"], "File name too long; pass a path with shorter names"),
        (["benchmark", "--table", "t.csv", "--strategies", ","], "names no strategy"),
        (["benchmark", "--table", "t.csv", "--workers", "0"], "--workers 0: give at least 1 process"),
        (["benchmark", "--table", "t.csv", "--set", "space=digits"], "sets space itself; the table answers"),
        (["benchmark", "--table", "t.csv", "--set", "seed=3"], "give the seeds with --seeds"),
    ],
)
def test_bad_command_lines_exit_2_with_the_value_and_write_nothing(
    tmp_path: Path, monkeypatch, capsys, args: list[str], message: str
) -> None:
    from rlnas.cli import main

    monkeypatch.chdir(tmp_path)
    run_dir = ["--run-dir", "run"] if args[0] == "search" and "--run-dir" not in args else []
    code = main([*args[:1], *run_dir, *args[1:]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def _python_calls(tmp_path: Path) -> list[tuple[str, typing.Callable[[], object], str]]:
    import numpy as np

    import rlnas
    from rlnas.data import from_arrays

    x, y = np.zeros((20, 4), dtype=np.float32), np.arange(20) % 2
    return [
        ("search a name", lambda: rlnas.search("digits"), "rlnas.search(config='digits')"),
        ("overrides as text", lambda: rlnas.search(overrides="training.epochs=1"), "a list of 'key=value' strings"),
        ("budget as text", lambda: rlnas.search(budget="3"), "budget='3': give a number"),
        ("run_dir as a number", lambda: rlnas.search(run_dir=3), "run_dir=3: give a path"),
        ("labels missing", lambda: from_arrays(x, None), "got y=None"),
        ("class names as one string", lambda: from_arrays(x, y, class_names="ab"), "is one string"),
        ("load_model(None)", lambda: rlnas.load_model(None), "None is not a path"),
        ("export epochs as text", lambda: rlnas.export(tmp_path, epochs="3"), "epochs='3'"),
        ("resume a number", lambda: rlnas.resume(7), "run_dir=7"),
        ("callback not callable", lambda: rlnas.search(callback="x"), "callback='x' is not callable"),
        ("on_epoch not callable", lambda: rlnas.resume(tmp_path, on_epoch=3), "on_epoch=3 is not callable"),
        ("config a list", lambda: rlnas.search(config=[1, 2]), "config=[1, 2]: give a shipped config's name"),
        ("labels as names", lambda: from_arrays(x, np.array(["a", "b"] * 10)), "np.unique(y, return_inverse=True)"),
        ("class names repeated", lambda: from_arrays(x, y, class_names=["a", "a"]), "give each class its own"),
        ("class names not text", lambda: from_arrays(x, y, class_names=[0, 1]), "give each class its own"),
    ]


@pytest.mark.parametrize("case", range(len(_python_calls(Path(".")))))
def test_the_python_api_raises_its_own_errors_for_arguments_of_the_wrong_type(tmp_path: Path, case: int) -> None:
    from rlnas.errors import RlnasError

    name, call, message = _python_calls(tmp_path)[case]
    with pytest.raises(RlnasError) as caught:
        call()
    assert message in str(caught.value), name
    assert list(tmp_path.iterdir()) == []


def test_names_that_are_not_utf8_are_refused_where_they_would_be_recorded_and_kept_where_they_are_only_read(
    tmp_path: Path,
) -> None:
    """A class folder or a run directory whose name is not UTF-8 is refused with its bytes and a fix (their
    names go into the run's files, TensorBoard and the exported model); image files may have any name."""
    import os

    import numpy as np
    from PIL import Image

    from rlnas.data.folder import scan
    from rlnas.errors import DataError, RunDirError
    from rlnas.rundir import create_run_dir

    root = os.fsencode(tmp_path / "photos")
    rng = np.random.default_rng(0)
    for name in (b"caf\xe9", b"tea"):
        os.makedirs(os.path.join(root, name))
        for i in range(3):
            pixels = (rng.random((8, 8)) * 255).astype("uint8")
            Image.fromarray(pixels).save(os.fsdecode(os.path.join(root, name, b"\xff%d.png" % i)))
    with pytest.raises(DataError, match=r"class folder .*caf\\xe9.* not UTF-8 text .* rename the folder"):
        scan(Path(os.fsdecode(root)))
    os.rename(os.path.join(root, b"caf\xe9"), os.path.join(root, b"cafe"))
    files = scan(Path(os.fsdecode(root)))  # image names need not be UTF-8: they are only read
    assert sorted({label for _, label in files["train"]}) == ["cafe", "tea"] and len(files["train"]) == 6
    run = Path(os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9"))
    with pytest.raises(RunDirError, match=r"run directory .*r\\xe9.* is not UTF-8 text"):
        create_run_dir(run)
    assert not run.exists()
