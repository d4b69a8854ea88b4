"""Package discovery (the rest of the metadata is in pyproject.toml): every package under rlnas/ is found
automatically; the Gymnasium environment ships as ``rlnas_envs`` (from envs/) and the configs as package data
of ``rlnas.configs`` (from configs/), reachable by name (``rlnas search --config mnist``)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["rlnas", "rlnas.*"]), "rlnas_envs", "rlnas.configs"],
    package_dir={"rlnas_envs": "envs", "rlnas.configs": "configs"},
    package_data={"rlnas.configs": ["*.yaml"]},
)
