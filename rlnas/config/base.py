"""What every config section shares: frozen pydantic models that forbid unknown keys, and the limits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "folder", "arrays", "csv", "memory")
TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar10")
USER_DATASETS = ("folder", "arrays", "csv")  # read from dataset.path
MAX_SEED = 2**32 - 1  # what numpy and torch take as a seed everywhere
MAX_IMAGE_SIZE = 4096  # pixels per side
Width = Annotated[int, Field(ge=1, le=4096)]  # units of a hidden layer of the controller or a surrogate
Augment = Literal["none", "shift", "crop", "flip", "crop_flip"]
