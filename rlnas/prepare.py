"""From a config to the pieces a run needs: the dataset (checked against a run's recorded data), the space and
the children's trainer, with every user error raised before anything is written."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from rlnas.config import RunConfig
from rlnas.data import Dataset, load_dataset
from rlnas.errors import ConfigError, DataError, RunDirError
from rlnas.evaluation.objective import check_limits
from rlnas.evaluation.trainer import ChildTrainer
from rlnas.rundir import DATASET_FILE
from rlnas.space import SearchSpace, build_space

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    config: RunConfig
    dataset: Dataset
    space: SearchSpace
    trainer: ChildTrainer


def prepare(config: RunConfig, data: Dataset | None = None, run_dir: Path | None = None) -> Prepared:
    """Load the dataset (or take ``data``) and build the space, raising user errors before anything is
    written. With the ``run_dir`` of an existing run, the data must be the data that run was searched on."""
    dataset = data if data is not None else load_dataset(config.dataset)
    if run_dir is not None:
        check_same_data(run_dir, dataset)
    family = config.space.family
    if family != "mlp" and not dataset.is_image:
        raise ConfigError(
            f"space {config.space.name!r} is of family {family!r}, which needs images, but dataset "
            f"{dataset.name!r} has inputs of shape {dataset.input_shape} (a table); use --set space=mlp or a space "
            "of family mlp"
        )
    device = config.training.device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"training.device={device}, but this machine has no CUDA GPU that torch can use; "
                "set training.device=auto (GPU when there is one) or cpu"
            )
    if len(dataset.val) == 0 or len(dataset.train) == 0:
        raise DataError(
            f"dataset {dataset.name!r} splits into {len(dataset.train)} training and {len(dataset.val)} validation "
            f"examples (dataset.val_fraction={config.dataset.val_fraction}); every child needs both: raise "
            "dataset.val_fraction or give more data"
        )
    if len(dataset.val) < 50:
        log.warning(
            "the validation split holds only %d examples (dataset.val_fraction=%s): proxy scores will be coarse "
            "and noisy; raise dataset.val_fraction if you can",
            len(dataset.val),
            config.dataset.val_fraction,
        )
    augment = {config.training.augment, config.export.augment or "none"} - {"none"}
    if augment and not dataset.is_image:
        raise ConfigError(f"augmentation {sorted(augment)} works on images only; set training.augment=none for a table")
    if config.export.tta != "none" and not dataset.is_image:
        raise ConfigError(
            f"export.tta={config.export.tta} averages predictions over shifted images, and this dataset is a "
            "table; set export.tta=none"
        )
    space = build_space(config.space, dataset.input_shape)
    if config.evaluation == "oneshot":
        from rlnas.oneshot.supernet import oneshot_space

        space = oneshot_space(space, config.training.model_dump())
    else:
        check_limits(space, dataset, config.objective, config.seed)
    return Prepared(config, dataset, space, ChildTrainer(space, dataset, config.training, config.seed))


def check_same_data(run_dir: Path, dataset: Dataset) -> None:
    """Refuse data whose fingerprint differs from the one recorded when the run was created."""
    file = Path(run_dir) / DATASET_FILE
    if not file.is_file():
        return  # runs made before rlnas recorded their data
    try:
        recorded = json.loads(file.read_text())
        fingerprint, described = str(recorded["fingerprint"]), dict(recorded["description"])
        then = sum(int(n) for n in recorded["examples"].values())
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise RunDirError(
            f"{file} is damaged ({type(err).__name__}: {err}), so the run's data cannot be checked; restore it from "
            "a backup, or start a new run"
        ) from None
    if fingerprint != dataset.fingerprint():
        source = " ".join(
            str(v) for v in (described.get("name"), described.get("path") or described.get("data_dir")) if v
        )
        now = len(dataset.train) + len(dataset.val) + len(dataset.test)
        raise DataError(
            f"the data differ from those {run_dir} was searched on ({source}: {then} examples then, "
            f"{now} now; fingerprint {dataset.fingerprint()} now, "
            f"{fingerprint} then); restore or pass the original data, or start a new run for new data"
        )
