"""What every config section shares: frozen pydantic models that forbid unknown keys, and the limits."""

from __future__ import annotations

import typing
from collections.abc import Hashable
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        """``seed: true`` would be taken for 1 (pydantic's lax mode): a number setting refuses true/false."""
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(field.alias or name, data.get(name))
                if isinstance(value, bool) and _numeric(field.annotation):
                    raise ValueError(f"{field.alias or name} is a number, not {str(value).lower()}; give a number")
        return data


def _numeric(annotation: Any) -> bool:
    """Whether a setting takes a number and never true/false (``int``, ``float``, optional or annotated)."""
    args = set(typing.get_args(annotation)) | {annotation}
    for arg in list(args):
        if typing.get_origin(arg) is Annotated:
            args.add(typing.get_args(arg)[0])
    return bool(args & {int, float}) and bool not in args


DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "folder", "arrays", "csv", "memory")
TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar10")
USER_DATASETS = ("folder", "arrays", "csv")  # read from dataset.path
MAX_SEED = 2**32 - 1  # what numpy and torch take as a seed everywhere
MAX_IMAGE_SIZE = 4096  # pixels per side
Width = Annotated[int, Field(ge=1, le=4096)]  # units of a hidden layer of the controller or a surrogate
Augment = Literal["none", "shift", "crop", "flip", "crop_flip"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last in silence,
    so a second ``seed:`` further down a config would override the first without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice; keep one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys; user text is never evaluated."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
