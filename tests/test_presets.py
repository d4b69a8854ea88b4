"""The image presets (configs/small_images.yaml, configs/colour32.yaml) search and export end to end on small
synthetic data of their kind (there is no CIFAR-10 on these machines; docs/benchmarks.md has the real runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import rlnas


def squares(shape: tuple[int, ...], n: int = 300) -> rlnas.Dataset:
    """Three classes of noisy images told apart by the row where a bright square sits."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 80, (n, *shape)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 + 9 * c : 9 + 9 * c, 4:11] = 255
    return rlnas.data.from_arrays(x, y)


@pytest.mark.parametrize(
    ("preset", "shape", "max_flops"), [("small_images", (28, 28), 3 * 10**7), ("colour32", (32, 32, 3), 6 * 10**7)]
)
def test_image_presets_search_and_export_on_small_synthetic_data(
    tmp_path: Path, preset: str, shape: tuple[int, ...], max_flops: int
) -> None:
    data = squares(shape)
    tiny = {  # the preset's space and recipe, at the scale of 300 images
        "training.data_fraction": 1.0,
        "training.batch_size": 32,
        "strategy.name": "random",  # the controller is tested elsewhere; here the space, recipe and export
        "objective.complexity": "params",  # no search for the space's largest FLOPs (30 s of meta forwards)
        "objective.max_flops": max_flops,
        "export.rescore_top_k": 2,
        "export.rescore_epochs": 1,
        "export.epochs": 5,
        "export.repeats": 1,
        "logging.graph": False,
        "logging.policy_images": False,
    }
    result = rlnas.search(data, config=preset, budget=3, run_dir=tmp_path / "run", overrides=tiny)
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["space"]["family"] == "convnet" and config["space"]["name"] == preset
    # the final training's recipe as the preset gives it (small_images: no erasing or EMA, which did not help)
    ema_erasing = {"small_images": (0.0, None), "colour32": (0.999, 0.25)}[preset]
    assert (config["export"]["ema"], config["export"]["erasing"]) == ema_erasing
    assert config["training"]["label_smoothing"] > 0 and config["export"]["augment"] != "none"
    assert result.best is not None and result.best.architecture["num_stages"] >= 2
    assert result.metrics["test_accuracy"] > 0.5  # chance: 1/3 (90 test images: p < 0.001)
    raw = data.test.x.numpy().transpose(0, 2, 3, 1)  # NHWC pixels, as a user holds them
    assert np.array_equal(result.predict(raw), result.model(data.test.x.float() / 255).argmax(1).numpy())
