"""Dropout with a faster random source on CPUs.

torch draws one random number per element of a dropout mask from its CPU generator
(`bernoulli_`, about 5 ns per element on 2 cores): 12% of a `moleblend_base` training
step on CPU. Here each int64 value of `random_()` (63 random bits) fills four 16-bit
lanes, of which 15 bits each are used: one int64 per four elements (a mask of 660k
elements in 0.5 ms of random draws instead of 3.3). The drop probability is then a
multiple of 2^-15 (0.1 becomes 3277 / 32768 = 0.100006), and kept elements are scaled
by the inverse of that probability's complement, so that the expected output still
equals the input. Other devices, evaluation and p = 0 take torch's own dropout or none.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Random bits used per element: 15 of each 16-bit lane (the top lane of torch's int64
# draws has only 15 random bits, its sign bit being 0).
LANE_BITS = 15
_LANE_MASK = (1 << LANE_BITS) - 1


def random_lanes(numel: int) -> torch.Tensor:
    """numel random integers, uniform on [0, 2^15), int16, from the CPU generator."""
    draws = torch.empty((numel + 3) // 4, dtype=torch.int64).random_()
    return draws.view(torch.int16)[:numel].bitwise_and_(_LANE_MASK)


def keep_mask(shape, p: float, dtype: torch.dtype) -> torch.Tensor:
    """0 (dropped, probability p rounded to a multiple of 2^-15) or 1 / (1 - that
    probability) per element, from the CPU generator."""
    dropped_below = round(p * (1 << LANE_BITS))
    if dropped_below >= 1 << LANE_BITS:  # p within 2^-16 of 1: everything dropped
        return torch.zeros(shape, dtype=dtype)
    scale = 1.0 / (1.0 - dropped_below / (1 << LANE_BITS))
    return (random_lanes(math.prod(shape)) >= dropped_below).to(dtype).mul_(scale).view(shape)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout(x, p, training), with `keep_mask` on CPUs."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    return x * keep_mask(x.shape, p, x.dtype)


class Dropout(nn.Module):
    """nn.Dropout with `keep_mask` on CPUs."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability {p} is not between 0 and 1")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
