from __future__ import annotations

import torch

from rlnas.evaluation.train import augment_batch, random_shift


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
