"""The configs shipped with rlnas, reachable by name (``--config mnist``, ``config="table"``) from anywhere.

A wheel holds them as package data (``rlnas/configs/*.yaml``); a clone or an editable install reads the
repository's ``configs/`` folder beside the package.
"""

from __future__ import annotations

from pathlib import Path

from rlnas.errors import ConfigError

_HERE = Path(__file__).resolve().parent


def shipped_configs() -> dict[str, Path]:
    """Name -> file of every shipped config (``default``, ``mnist``, ``table``, ...)."""
    for folder in (_HERE / "configs", _HERE.parent / "configs"):
        if (folder / "default.yaml").is_file():
            return {p.stem: p for p in sorted(folder.glob("*.yaml"))}
    return {}


def find_config(config: str | Path, flag: str = "--config") -> Path:
    """An existing YAML file, or the shipped config of that name: ``mnist``, ``mnist.yaml`` and, outside a
    clone, the README's ``configs/mnist.yaml`` all name the shipped one. ``flag`` is how the caller passed it
    (``--config`` on the command line, ``config=`` in Python), for the error message."""
    path = Path(config)
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = path.stem if path.suffix in (".yaml", ".yml") else path.name
    if str(path.parent) in (".", "configs") and name in shipped:
        return shipped[name]
    if path.is_dir():
        what = "is a directory, not a file"
    else:
        what = "is not a regular file (a device or pipe)" if path.exists() else "does not exist"
    names = ", ".join(shipped) or "none found"
    raise ConfigError(
        f"config file {path} {what}; pass an existing YAML file or the name of a shipped config ({names}) to {flag}"
    )
