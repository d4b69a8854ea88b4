from __future__ import annotations

import numpy as np
import pytest
import torch

from rlnas.errors import ChildFailure
from rlnas.evaluation.objective import Objective
from rlnas.evaluation.train import TrainSettings, augment_batch, random_shift, train_model
from rlnas.evaluation.trainer import TrainingEvaluator
from rlnas.prepare import prepare
from tests.conftest import tiny_config


def test_random_shift_moves_each_image_by_at_most_two_pixels() -> None:
    x = torch.zeros(64, 2, 12, 12)
    x[:, 0, 5, 6] = 1.0  # one lit pixel per image, far from the border
    x[:, 1, 5, 6] = 2.0
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    offsets = set()
    for image in out:
        rows, cols = torch.nonzero(image[0], as_tuple=True)
        assert len(rows) == 1 and image[0].sum() == 1.0
        dy, dx = int(rows[0]) - 5, int(cols[0]) - 6
        assert abs(dy) <= 2 and abs(dx) <= 2
        assert image[1, rows[0], cols[0]] == 2.0  # both channels moved together
        offsets.add((dy, dx))
    assert len(offsets) > 10  # per-image offsets, not one per batch


def test_a_diverging_child_fails_with_its_non_finite_loss() -> None:
    """The loss is checked once per epoch (no host synchronisation per step on a GPU), so a child whose loss
    overflows fails at the end of that epoch."""
    prepared = prepare(tiny_config())
    model = prepared.trainer.build(prepared.space.sample(np.random.default_rng(0)))
    settings = TrainSettings(epochs=3, optimizer="sgd", learning_rate=1e30)
    with pytest.raises(ChildFailure, match=r"non-finite training loss \((nan|inf)\) in epoch 1"):
        train_model(model, prepared.dataset.train, settings, seed=0)
    calm = prepared.trainer.build(prepared.space.sample(np.random.default_rng(0)))
    stats = train_model(calm, prepared.dataset.train, TrainSettings(epochs=1), seed=0)
    assert 0.0 < stats["train_loss"] < 10.0


def test_crop_and_flip_augmentation_for_natural_images() -> None:
    x = torch.zeros(200, 3, 16, 16)
    x[:, :, 8, 1] = 1.0  # a lit column near the left border
    generator = torch.Generator().manual_seed(0)
    flipped = augment_batch(x, "flip", generator)
    left = int((flipped[:, 0, 8, 1] == 1.0).sum())
    right = int((flipped[:, 0, 8, 14] == 1.0).sum())
    assert left + right == 200 and 60 < right < 140  # about half mirrored, nothing else changed
    cropped = augment_batch(x, "crop", generator)  # up to 16 / 8 = 2 pixels each way, zero filled
    cols = {int(torch.nonzero(img[0].sum(0))[0]) for img in cropped if img[0].sum() > 0}
    assert cols <= {0, 1, 2, 3} and len(cols) > 1
    assert torch.equal(augment_batch(x, "none", generator), x)
    both = augment_batch(x, "crop_flip", generator)
    assert both.shape == x.shape and float(both.sum()) <= float(x.sum())


def test_cross_validation_trains_on_k_minus_1_folds_and_scores_the_one_left_out(monkeypatch) -> None:
    from rlnas.evaluation import trainer as trainer_module

    config = tiny_config("training.cv_folds=3", "training.epochs=2")
    prepared = prepare(config)
    train_sizes: list[int] = []
    scored: list[tuple[int, float]] = []
    real_train, real_scores = trainer_module.train_model, trainer_module.scores

    def recording_train(model, data, settings, seed, on_epoch, *rest):  # type: ignore[no-untyped-def]
        train_sizes.append(len(data))
        return real_train(model, data, settings, seed, on_epoch, *rest)

    def recording_scores(model, split, task):  # type: ignore[no-untyped-def]
        result = real_scores(model, split, task)
        scored.append((len(split), result["accuracy"]))
        return result

    monkeypatch.setattr(trainer_module, "train_model", recording_train)
    monkeypatch.setattr(trainer_module, "scores", recording_scores)
    epochs: list[tuple[int, int, float | None]] = []
    arch = prepared.space.sample(np.random.default_rng(0))
    _, metrics = prepared.trainer.validate(arch, seed=1, on_epoch=lambda e: epochs.append((e.epoch, e.epochs, e.score)))
    rows = len(prepared.dataset.train) + len(prepared.dataset.val)
    assert len(scored) == 3 and sum(n for n, _ in scored) == rows  # every row scored once, by one fold
    assert train_sizes == [rows - n for n, _ in scored]  # each child trained on the other folds
    assert metrics["val_accuracy"] == pytest.approx(np.mean([a for _, a in scored]))
    assert metrics["val_accuracy_std"] == pytest.approx(np.std([a for _, a in scored]))
    assert metrics["cv_folds"] == 3
    assert epochs == [(d, 6, None) for d in range(1, 7)]  # progress over all folds' epochs, no scores
    evaluation = TrainingEvaluator(prepared.trainer, Objective(config.objective, 1e9), seed=0).evaluate(arch)
    assert evaluation.metrics["cv_folds"] == 3 and 0.0 < evaluation.metrics["val_accuracy"] <= 1.0


def test_children_report_a_validation_curve_that_leaves_their_training_unchanged() -> None:
    """Each epoch is scored on validation; the last epoch's score is the child's score, and scoring as it goes
    trains exactly the same network as training without it (dropout and batch norm back in training mode)."""
    config = tiny_config("training.epochs=3")
    prepared = prepare(config)
    arch = prepared.space.sample(np.random.default_rng(3))
    heard = []
    evaluator = TrainingEvaluator(prepared.trainer, Objective(config.objective, 1e9), seed=0)
    evaluator.on_epoch = heard.append
    evaluation = evaluator.evaluate(arch)
    assert [(e.epoch, e.epochs) for e in heard] == [(1, 3), (2, 3), (3, 3)]
    assert evaluation.curve == tuple(e.score for e in heard)
    assert evaluation.curve[-1] == evaluation.metrics["val_accuracy"]
    assert all(0.0 <= s <= 1.0 for s in evaluation.curve) and all(e.train_loss > 0 for e in heard)
    settings = TrainSettings(epochs=3, data_fraction=0.5)
    scored, plain = (prepared.trainer.build(arch) for _ in range(2))
    plain.load_state_dict(scored.state_dict())
    events = []
    with torch.random.fork_rng():
        torch.manual_seed(7)  # dropout draws from torch's RNG
        train_model(scored, prepared.dataset.train, settings, 5, events.append, prepared.dataset.val)
        torch.manual_seed(7)
        train_model(plain, prepared.dataset.train, settings, 5)
    assert len(events) == 3 and all(e.score is not None for e in events)
    for a, b in zip(scored.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _lrs(settings: TrainSettings, steps_per_epoch: int) -> list[float]:
    from rlnas.evaluation.train import make_schedule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=settings.learning_rate)
    schedule = make_schedule(optimizer, settings, steps_per_epoch)
    rates = []
    for _ in range(settings.epochs * steps_per_epoch):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_learning_rate_schedules_with_warm_up() -> None:
    plain = _lrs(TrainSettings(epochs=4, learning_rate=0.1), 10)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=40)
    expected = []
    for _ in range(40):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    np.testing.assert_allclose(plain, expected, atol=1e-12)  # no warm-up: torch's cosine annealing
    warm = _lrs(TrainSettings(epochs=4, learning_rate=0.1, warmup_epochs=1), 10)
    assert warm[0] == pytest.approx(0.1 / 25) and warm[10] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(warm[:10], warm[1:11], strict=True))  # rising linearly to the peak
    assert all(a >= b for a, b in zip(warm[10:], warm[11:], strict=False)) and warm[-1] < 0.002
    flat = _lrs(TrainSettings(epochs=2, learning_rate=0.1, warmup_epochs=0.5, schedule="constant"), 10)
    assert flat[5:] == [pytest.approx(0.1)] * 15
    cycle = _lrs(TrainSettings(epochs=4, learning_rate=0.1, schedule="onecycle"), 10)
    assert max(cycle) == pytest.approx(0.1) and int(np.argmax(cycle)) in (11, 12)  # the peak at 30 % of the steps
    assert cycle[0] < 0.01 and cycle[-1] < 1e-3


def test_weight_decay_spares_biases_and_normalization() -> None:
    from rlnas.evaluation.train import make_optimizer

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    optimizer = make_optimizer(model, TrainSettings(optimizer="adamw", weight_decay=0.05))
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay[id(model[0].weight)] == decay[id(model[2].weight)] == 0.05
    assert decay[id(model[0].bias)] == decay[id(model[1].weight)] == decay[id(model[1].bias)] == 0.0
    assert len(decay) == len(list(model.parameters()))


def test_label_smoothing_and_random_erasing() -> None:
    from rlnas.evaluation.train import loss_function, random_erasing

    logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    smoothed = loss_function(TrainSettings(label_smoothing=0.3))(logits, y)
    target = torch.full((5, 3), 0.1).scatter(1, y[:, None], 0.8)
    assert smoothed == pytest.approx(float(-(target * torch.log_softmax(logits, 1)).sum(1).mean()), rel=1e-5)
    # every pixel 1 or 2, so no pixel can equal the fill (the channel mean, strictly between them)
    x = torch.randint(1, 3, (400, 2, 16, 16), generator=torch.Generator().manual_seed(1)).float()
    out = random_erasing(x, 0.5, torch.Generator().manual_seed(0))
    changed = (out != x).flatten(1).any(1)
    assert 150 < int(changed.sum()) < 250  # about half the images
    for image, was in zip(out[changed], x[changed], strict=True):
        erased = (image != was).all(0)  # every channel of a rectangle
        rows, cols = erased.any(1).nonzero(), erased.any(0).nonzero()
        height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(erased.sum()) == height * width  # one rectangle
        assert 0.02 * 256 - 8 <= height * width <= 0.33 * 256 + 8  # 2-33 % of the image, rounded
    assert torch.allclose(out[changed][:, :, 0, 0].mean(), torch.tensor(1.5), atol=0.3)
    assert torch.equal(augment_batch(x, "none", torch.Generator(), erasing=0.0), x)


def test_weight_average_and_bf16_training() -> None:
    """``ema`` ends the training with the averaged weights (what WeightAverage computes, step by step);
    ``precision=bf16`` trains under autocast (on the CPU too) to a finite loss."""
    from rlnas.evaluation.train import WeightAverage

    prepared = prepare(tiny_config())
    arch = prepared.space.sample(np.random.default_rng(0))
    net = torch.nn.Linear(2, 1)
    average = WeightAverage(net, 0.5)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    average.update(net)  # decay min(0.5, 2/11) = 2/11
    torch.testing.assert_close(average.average["weight"], start + 9 / 11)
    models = []
    for ema in (0.0, 0.99):
        model = prepared.trainer.build(arch)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            train_model(model, prepared.dataset.train, TrainSettings(epochs=2, ema=ema), seed=0)
        models.append(model)
    assert not torch.equal(next(models[0].parameters()), next(models[1].parameters()))
    bf16 = prepared.trainer.build(arch)
    stats = train_model(bf16, prepared.dataset.train, TrainSettings(epochs=1, precision="bf16"), seed=0)
    assert 0.0 < stats["train_loss"] < 10.0


def test_auto_precision_uses_bf16_for_images_on_a_native_bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """``precision: auto`` on the CPU: bf16 only where the CPU computes it natively and the inputs are images
    of 16x16 or more (tables and 8x8 digits stay fp32)."""
    from rlnas.evaluation import train

    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(train, "native_bf16", lambda device, native=native: native)
        assert train.auto_bf16(cpu, (1, 28, 28)) is native
        assert train.auto_bf16(cpu, (3, 16, 16)) is native
        assert train.auto_bf16(cpu, (1, 8, 8)) is False
        assert train.auto_bf16(cpu, (64,)) is False
    assert train.auto_bf16(torch.device("meta"), (1, 28, 28)) is False
