"""Which relation encodings enter the attention bias, pair by pair.

A `RelationInput` gives, per modality, a 0/1 weight for every atom pair (or None when
the modality is left out of the input altogether). Blending draws one modality per
unordered pair; single-modality masking hides a random subset of one modality's pairs;
fine-tuning inputs use whole modalities.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

SPD, EDGE, DISTANCE = 0, 1, 2
MODALITY_NAMES = ("spd", "edge", "3d")


@dataclass
class RelationInput:
    spd: Optional[torch.Tensor] = None  # [B, N, N] weights of the SPD bias
    edge: Optional[torch.Tensor] = None  # [B, N, N] weights of the multi-hop edge bias
    distance: Optional[torch.Tensor] = None  # [B, N, N] weights of the 3D bias and 3D atom features

    @property
    def uses_2d(self) -> bool:
        return self.spd is not None or self.edge is not None


def symmetric_uniform(pair_mask: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Uniform numbers with u[i, j] = u[j, i]: one draw per unordered pair."""
    u = torch.rand(pair_mask.shape, generator=generator, device=pair_mask.device)
    upper = torch.triu(u)
    return upper + torch.triu(u, diagonal=1).transpose(1, 2)


def parse_ratio(text: str) -> Sequence[float]:
    """'2:2:6' -> (0.2, 0.2, 0.6)"""
    try:
        parts = [float(p) for p in text.replace(",", ":").split(":")]
    except ValueError:
        parts = []
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise ValueError(f"blend ratio {text!r}: expected three non-negative numbers SPD:Edge:3D, e.g. 2:2:6")
    total = sum(parts)
    return tuple(p / total for p in parts)


def sample_blend_sources(pair_mask: torch.Tensor, ratio: Sequence[float], has_3d: torch.Tensor,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One source per unordered atom pair: SPD, EDGE or DISTANCE with probabilities `ratio`;
    -1 on padding. Molecules without 3D coordinates draw from the 2D sources only, in
    the ratio's proportions between them."""
    p_spd, p_edge, p_3d = ratio
    total = p_spd + p_edge + p_3d * has_3d.to(torch.float32)
    if bool((total <= 0).any()):
        raise ValueError("a molecule without 3D coordinates cannot be blended with a 3D-only ratio")
    first = (p_spd / total)[:, None, None]
    second = ((p_spd + p_edge) / total)[:, None, None]
    u = symmetric_uniform(pair_mask, generator)
    sources = (u >= first).long() + (u >= second).long()
    return torch.where(pair_mask, sources, torch.full_like(sources, -1))


def blend_input(sources: torch.Tensor) -> RelationInput:
    def weight(s):
        return (sources == s).float()

    return RelationInput(spd=weight(SPD), edge=weight(EDGE), distance=weight(DISTANCE))


def symmetric_keep_mask(pair_mask: torch.Tensor, mask_ratio: float,
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """1 for pairs kept visible, 0 for a random `mask_ratio` of the unordered pairs."""
    keep = symmetric_uniform(pair_mask, generator) >= mask_ratio
    return (keep & pair_mask).float()


def whole_modalities(pair_mask: torch.Tensor, modalities: Sequence[int]) -> RelationInput:
    ones = pair_mask.float()
    return RelationInput(
        spd=ones if SPD in modalities else None,
        edge=ones if EDGE in modalities else None,
        distance=ones if DISTANCE in modalities else None,
    )
