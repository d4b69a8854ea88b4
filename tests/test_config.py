from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlnas.config import load_config
from rlnas.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_default_yaml_is_the_builtin_default() -> None:
    assert load_config(ROOT / "configs" / "default.yaml") == load_config(None)


def test_default_yaml_shows_every_key() -> None:
    """Its header promises every key with its default (the same check for each section and setting)."""
    shown = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    missing: list[str] = []

    def walk(full: dict, yaml_part: object, path: str) -> None:
        for key, value in full.items():
            if not isinstance(yaml_part, dict) or key not in yaml_part:
                missing.append(path + key)
            elif isinstance(value, dict) and value and not isinstance(yaml_part[key], str):  # space: cnn names one
                walk(value, yaml_part[key], f"{path}{key}.")

    walk(load_config(None).model_dump(mode="json", by_alias=True), shown, "")
    assert missing == []


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    load_config(path)


def test_overrides_are_typed_yaml_values() -> None:
    cfg = load_config(None, ["training.epochs=3", "objective.lambda=0.5", "space.depth=[1, 2]", "seed=7"])
    assert cfg.training.epochs == 3 and cfg.objective.lambda_ == 0.5 and cfg.seed == 7
    assert cfg.space.depth == [1, 2] and cfg.space.name == "cnn"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.epoch=3", r"training\.epoch: unknown key"),
        ("training.epochs=0", r"training\.epochs: .*greater than or equal to 1 \(got 0\)"),
        ("objective.complexity=energy", r"objective\.complexity: .*'params', 'flops' or 'latency'"),
        ("strategy.name=hillclimb", r"strategy\.name"),
        ("space=resnet", "unknown built-in space 'resnet'"),
        ("dataset.name=imagenet", r"dataset\.name"),
        ("budget.evaluations=many", r"budget\.evaluations"),
        ("epochs", "key.path=value"),
        ("training.epochs.max=3", r"training\.epochs: .*valid integer"),
        ("objective.max_flops=0", r"objective\.max_flops: .*greater than or equal to 1"),
        ("evaluation=oneshot objective.max_flops=1000000", r"max_flops=1000000 is not supported with evaluation="),
        ("training.warmup_epochs=1e12", r"training: warmup_epochs=1e\+12 is not below epochs=5"),
    ],
)
def test_bad_values_fail_at_load_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, override.split(" "))


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {epochs: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)


def test_resolved_config_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = load_config(None, ["objective.lambda=0.1", "space=mlp"])
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def test_former_controller_settings_load_at_their_fixed_values_and_are_refused_otherwise(tmp_path: Path) -> None:
    """strategy.ppo settings that did not earn their place are gone: a run's stored config.yaml, which names
    them at their values of then, still loads (resume); any other value is refused, naming the fix."""
    from rlnas.config.strategy import PPO_FIXED

    data = yaml.safe_load(load_config(None).to_yaml())
    data["strategy"]["ppo"].update(PPO_FIXED)
    old = tmp_path / "config.yaml"
    old.write_text(yaml.safe_dump(data))
    assert load_config(old) == load_config(None)
    assert load_config(None, ["strategy.ppo.gamma=1"]) == load_config(None)  # 1 == 1.0
    with pytest.raises(
        ConfigError, match=r"strategy\.ppo\.gamma is no longer a setting: it is fixed at 1\.0.*got 0\.9"
    ):
        load_config(None, ["strategy.ppo.gamma=0.9"])
    with pytest.raises(ConfigError, match=r"strategy\.ppo\.elite_parents is no longer a setting.*remove it"):
        load_config(None, ["strategy.ppo.elite_parents=3"])


def test_loading_a_config_and_building_its_space_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from rlnas.config import load_config; from rlnas.space import build_space; "
        "c = load_config('small_images', []); s = build_space(c.space, (1, 28, 28)); "
        "print(len(s.decisions), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 10 and out[1] == "False"
