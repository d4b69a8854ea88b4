from __future__ import annotations

import torch

from rlnas.evaluation.train import random_shift


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
