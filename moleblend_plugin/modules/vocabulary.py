"""Embedding-table layout of the Graphormer / Transformer-M family.

Checkpoints of those models index their tables this way; keeping the layout lets their
weights be loaded unchanged. Index 0 is padding everywhere.
"""
import torch

FEATURE_OFFSET = 512  # each categorical feature column gets its own block of 512 rows
NUM_ATOM_COLUMNS = 9
NUM_BOND_COLUMNS = 3
ATOM_TABLE_SIZE = FEATURE_OFFSET * NUM_ATOM_COLUMNS + 1  # 4609
BOND_TABLE_SIZE = FEATURE_OFFSET * NUM_BOND_COLUMNS + 1  # 1537
PAIR_TYPE_TABLE_SIZE = FEATURE_OFFSET * 3  # Transformer-M's Gaussian-layer table, 1536
SPATIAL_TABLE_SIZE = 512  # SPD + 1, unreachable (510) -> 511
DEGREE_TABLE_SIZE = 512
EDGE_DISTANCE_TABLE_SIZE = 128  # hop weights allocated for up to 128 hops
PAIR_TYPE_PADDING = (1, FEATURE_OFFSET + 1)


def _column_offsets(num_columns: int, device) -> torch.Tensor:
    return torch.arange(num_columns, device=device) * FEATURE_OFFSET


def atom_feature_index(atom_features: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
    """Raw OGB atom features [B, N, 9] -> table rows: feature + 2 + 512 * column."""
    index = atom_features + 2 + _column_offsets(atom_features.shape[-1], atom_features.device)
    return index * atom_mask[..., None]


def degree_index(degree: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
    return (degree.clamp(max=DEGREE_TABLE_SIZE - 2) + 1) * atom_mask


def spatial_index(spd: torch.Tensor, pair_mask: torch.Tensor) -> torch.Tensor:
    return (spd + 1) * pair_mask


def hop_bond_index(edge_path: torch.Tensor) -> torch.Tensor:
    """Raw bond features along paths [..., hops, 3], -1 past the path -> table rows:
    feature + 3 + 512 * column, 0 where there is no hop."""
    offsets = _column_offsets(edge_path.shape[-1], edge_path.device)
    return torch.where(edge_path >= 0, edge_path + 3 + offsets, torch.zeros_like(edge_path))


def pair_type_index(atomic_numbers: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
    """Atomic numbers [B, N] -> Transformer-M's pair-type rows [B, N, N, 2]:
    (Z_i + 2, Z_j + 514), padding (1, 513)."""
    z = (atomic_numbers + 1) * atom_mask + 1  # Z + 2 for atoms, 1 for padding
    n = z.shape[1]
    z_i = z[:, :, None].expand(-1, -1, n)
    z_j = z[:, None, :].expand(-1, n, -1) + FEATURE_OFFSET
    return torch.stack([z_i, z_j], dim=-1)
