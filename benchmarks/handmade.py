"""Hand-made networks trained with rlnas's recipe, as a final training of the export trains them: on
train+validation for ``--epochs``, scored once on the test split. The baseline a search must beat.

    python benchmarks/handmade.py --data-dir DIR --dataset fashion_mnist --net two_conv --epochs 10 \
        [--set training.erasing=0.25 ...] [--ema 0.999] [--augment shift] [--out result.json] [--tune]

``--tune``: train on the training split only and report the validation accuracy after every epoch, never
the test split (for choosing a recipe on held-out data); at the end also with test-time views averaged:
``shift`` (``export.tta``: the image and its 1-pixel shifts, zeros filled in) and, for comparison, a
horizontal flip (which rlnas does not ship: it changes what a digit is).

Nets: ``two_conv`` (cnn family: two 3x3 conv blocks of 32 and 64 filters with BN and max pooling, a 128-unit
hidden layer, dropout 0.25) and ``resnet_small`` (convnet family: three residual stages of 32, 64 and 128
channels, each starting with a stride-2 block). ``--stages`` builds any other convnet:
``--stages residual:64:2:stride,residual:128:2:stride,plain:256:1:pool`` (block:width:blocks:downsample per
stage, 3x3 kernels, ReLU).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rlnas.config import load_config
from rlnas.evaluation.train import scores
from rlnas.evaluation.trainer import Recipe
from rlnas.models.complexity import count_flops, count_params
from rlnas.models.families import Ensemble, ViewAverage
from rlnas.prepare import prepare

STAGE = {"blocks": 1, "kernel_size": 3, "se": False, "activation": "relu", "downsample": "stride"}
NETS = {
    "two_conv": (
        [
            "space.depth=[2]",
            "space.per_layer.filters=[32,64]",
            "space.per_layer.kernel_size=[3]",
            "space.head.hidden_units=[128]",
            "space.head.dropout=[0.25]",
        ],
        {
            "num_blocks": 2,
            **{f"block{k}.{r}": v for k in (1, 2) for r, v in (("kernel_size", 3), ("activation", "relu"))},
            **{f"block{k}.{r}": v for k in (1, 2) for r, v in (("batch_norm", True), ("pooling", "max"))},
            "block1.filters": 32,
            "block2.filters": 64,
            "hidden_units": 128,
            "head_activation": "relu",
            "dropout": 0.25,
        },
    ),
    "resnet_small": (
        ["space=convnet", "space.depth=[3]", "space.per_layer.width=[32,64,128]", "space.head.dropout=[0.0]"],
        {
            "num_stages": 3,
            **{f"stage{k}.{r}": v for k in (1, 2, 3) for r, v in STAGE.items()},
            **{f"stage{k}.block": "residual" for k in (1, 2, 3)},
            **{f"stage{k}.width": w for k, w in ((1, 32), (2, 64), (3, 128))},
            "dropout": 0.0,
        },
    ),
}


class Flipped(torch.nn.Module):
    """A network that sees each image mirrored left to right."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.flip(x, dims=[-1]))


def convnet(stages: str) -> tuple[list[str], dict[str, object]]:
    """The ``--stages`` net: ``block:width:blocks:downsample`` per stage, comma-separated."""
    parts = [stage.split(":") for stage in stages.split(",")]
    values: dict[str, object] = {"num_stages": len(parts), "dropout": 0.0}
    for k, (kind, width, blocks, downsample) in enumerate(parts, 1):
        stage = {**STAGE, "block": kind, "width": int(width), "blocks": int(blocks), "downsample": downsample}
        values.update({f"stage{k}.{role}": v for role, v in stage.items()})
    widths = sorted({int(p[1]) for p in parts})
    blocks = sorted({int(p[2]) for p in parts})
    space = ["space=convnet", f"space.depth=[{len(parts)}]", f"space.per_layer.width={widths}"]
    space += [f"space.per_layer.blocks={blocks}", "space.per_layer.block=[plain,residual]"]
    return [*space, "space.per_layer.downsample=[stride,pool,none]", "space.head.dropout=[0.0]"], values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--net", choices=sorted(NETS), default="two_conv")
    parser.add_argument("--stages", help="a convnet instead of --net: block:width:blocks:downsample,...")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", default="shift")
    parser.add_argument("--ema", type=float, default=0.0)
    parser.add_argument("--set", action="append", default=[], help="training.* overrides (the recipe)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--tune", action="store_true", help="train on train, score validation per epoch")
    args = parser.parse_args()
    space, values = convnet(args.stages) if args.stages else NETS[args.net]
    config = load_config(None, [f"dataset.name={args.dataset}", f"dataset.data_dir={args.data_dir}", *space, *args.set])
    prepared = prepare(config)
    arch = prepared.space.make({**{d.name: d.choices[0] for d in prepared.space.decisions}, **values})
    start = time.perf_counter()
    curve: list[float] = []
    model, stats = prepared.trainer.train(
        arch,
        args.seed,
        epochs=args.epochs,
        on_train_and_val=not args.tune,
        augment=args.augment,
        final=Recipe(ema=args.ema),
        on_epoch=lambda event: curve.append(round(event.score or 0.0, 4)),
        val=prepared.dataset.val if args.tune else None,
    )
    seconds = time.perf_counter() - start
    shape = prepared.dataset.input_shape
    result = {
        "net": args.stages or args.net,
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seed": args.seed,
        "augment": args.augment,
        "ema": args.ema,
        "recipe": args.set,
        "params": count_params(model),
        "mflops": round(count_flops(model, shape) / 1e6, 2),
        "train_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
    }
    if args.tune:
        result["val_curve"] = curve
        model = model.eval()
        views = {
            "none": model,
            "shift": ViewAverage(model, True, "shift"),
            "flip": Ensemble([model, Flipped(model)], True),
        }
        result["val_accuracy_with_views"] = {
            name: scores(m, prepared.dataset.val, "classification")["accuracy"] for name, m in views.items()
        }
    else:
        result.update(
            {f"test_{k}": v for k, v in scores(model.eval(), prepared.dataset.test, prepared.dataset.task).items()}
        )
    text = json.dumps(result, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
