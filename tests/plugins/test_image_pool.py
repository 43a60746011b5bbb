"""The CycleGAN image pool."""

from __future__ import annotations

import torch
from i2i_cyclegan import ImagePool


def images(n: int, start: int = 0) -> torch.Tensor:
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()


def test_returns_its_input_while_filling_then_mixes_history():
    pool = ImagePool(4, seed=0)
    assert torch.equal(pool.query(images(4)), images(4))
    seen = torch.cat([pool.query(images(1, start=100 + i)) for i in range(200)])[:, 0, 0, 0].tolist()
    old = [v for i, v in enumerate(seen) if v != 100 + i]
    assert 60 < len(old) < 140  # about half come from the history
    assert all(v <= 100 + i for i, v in zip(range(200), seen, strict=True))  # never a future image


def test_size_zero_is_a_pass_through():
    x = images(3)
    assert ImagePool(0).query(x) is x


def test_state_round_trip_continues_identically():
    a = ImagePool(3, seed=5)
    for i in range(10):
        a.query(images(1, i))
    tensors, state = a.state_dict()
    b = ImagePool(3, seed=99)
    b.load_state_dict(tensors, state)
    for i in range(20):
        assert torch.equal(a.query(images(1, 50 + i)), b.query(images(1, 50 + i)))
