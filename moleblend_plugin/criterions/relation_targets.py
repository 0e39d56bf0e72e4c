"""Targets of the relation heads, computed from a padded batch (see data.collate)."""
import torch
from ogb.utils.features import get_bond_feature_dims

from moleblend_data.relations import UNREACHABLE_SPD

UNREACHABLE_CLASS = 0


def off_diagonal_pairs(atom_mask: torch.Tensor) -> torch.Tensor:
    """[B, N, N] True for pairs of two different real atoms."""
    pairs = atom_mask[:, :, None] & atom_mask[:, None, :]
    eye = torch.eye(atom_mask.shape[1], dtype=torch.bool, device=atom_mask.device)
    return pairs & ~eye


def spd_classes(spd: torch.Tensor, max_class: int) -> torch.Tensor:
    """SPD 1..max_class (longer paths clipped to max_class); class 0 = unreachable."""
    return torch.where(spd == UNREACHABLE_SPD, torch.full_like(spd, UNREACHABLE_CLASS), spd.clamp(max=max_class))


def bond_feature_sizes():
    """Classes of each OGB bond feature (bond type, stereo, conjugation): the edge head's
    logit groups."""
    return list(get_bond_feature_dims())


def split_bond_logits(logits: torch.Tensor):
    """[..., sum of bond feature sizes] -> one logit tensor per OGB bond feature."""
    return torch.split(logits, bond_feature_sizes(), dim=-1)


def relative_positions(coordinates: torch.Tensor) -> torch.Tensor:
    """[B, N, 3] -> [B, N, N, 3] with [b, i, j] = pos_j - pos_i."""
    return coordinates.unsqueeze(1) - coordinates.unsqueeze(2)
