"""One molecule's model inputs, and padding a list of them into a batch.

Everything stays in raw feature values (OGB vocabularies, SPD in hops, bond features
along paths, Angstrom); the model owns the embedding-table layout.
"""
from typing import Dict, List, Optional

import numpy as np
import torch

from moleblend_data.molecule import Geometry, MoleculeRecord
from moleblend_data.relations import MULTI_HOP_MAX_DIST, NO_HOP, pair_relations


def molecule_inputs(record: MoleculeRecord, conformer: Optional[int],
                    max_hops: int = MULTI_HOP_MAX_DIST) -> Dict[str, np.ndarray]:
    """Relations and features of one molecule; `conformer` picks the coordinates (None: no 3D)."""
    n = record.num_atoms
    relations = pair_relations(n, record.bond_index, record.bond_features, max_hops)
    degree = np.bincount(record.bond_index.reshape(-1), minlength=n) if record.bond_index.size else np.zeros(n, np.int64)
    has_3d = conformer is not None and Geometry.has_3d(record.geometry) and record.coordinates.shape[0] > 0
    coordinates = record.coordinates[conformer] if has_3d else np.zeros((n, 3), np.float32)
    return {
        "atom_features": record.atom_features,
        "atomic_numbers": record.atomic_numbers,
        "degree": degree,
        "spd": relations.spd,
        "edge_path": relations.edge_path,
        "coordinates": coordinates,
        "has_3d": np.bool_(has_3d),
        "targets": record.targets,
    }


def _pad(arrays: List[np.ndarray], n: int, pad_value, dims: int, dtype) -> torch.Tensor:
    """Pad the first `dims` axes of every array to n and stack."""
    first = arrays[0]
    out = np.full((len(arrays),) + (n,) * dims + first.shape[dims:], pad_value, dtype=dtype)
    for k, a in enumerate(arrays):
        out[(k,) + tuple(slice(0, s) for s in a.shape[:dims])] = a
    return torch.from_numpy(out)


def collate_molecules(items: List[Dict[str, np.ndarray]]) -> Dict[str, torch.Tensor]:
    n = max(item["atom_features"].shape[0] for item in items)
    counts = [item["atom_features"].shape[0] for item in items]
    atom_mask = torch.zeros(len(items), n, dtype=torch.bool)
    for k, c in enumerate(counts):
        atom_mask[k, :c] = True
    targets = [item["targets"] for item in items]
    if len({t.shape for t in targets}) != 1:
        raise ValueError(f"molecules in one batch have different target counts: {sorted({t.shape for t in targets})}")
    return {
        "atom_mask": atom_mask,
        "atom_features": _pad([i["atom_features"] for i in items], n, 0, 1, np.int64),
        "atomic_numbers": _pad([i["atomic_numbers"] for i in items], n, 0, 1, np.int64),
        "degree": _pad([i["degree"] for i in items], n, 0, 1, np.int64),
        "spd": _pad([i["spd"] for i in items], n, 0, 2, np.int64),
        "edge_path": _pad([i["edge_path"] for i in items], n, NO_HOP, 2, np.int64),
        "coordinates": _pad([i["coordinates"] for i in items], n, 0.0, 1, np.float32),
        "has_3d": torch.tensor([bool(i["has_3d"]) for i in items]),
        "targets": torch.from_numpy(np.stack(targets).astype(np.float32)),
    }
