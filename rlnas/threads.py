"""Torch's intra-op threads for a block of code, restored afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (None: leave them as they are). Tiny tensors (the
    controller's policy, surrogates, FLOP counts) run fastest on one: more threads only add synchronization,
    and far more so while children train on the other cores."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
