"""The in-memory form of one prepared molecule, shared by data_prep and the plugin."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_ATOM_FEATURES = 9  # OGB atom features
NUM_BOND_FEATURES = 3  # OGB bond features


class Geometry:
    """Where a record's coordinates came from (stored as one byte)."""

    NONE = 0  # no coordinates: 2D-only dataset
    SOURCE = 1  # given by the input file (SDF, QM9 DFT geometry, PCQM4Mv2 SDF)
    RDKIT_3D = 2  # RDKit ETKDG + MMFF conformers
    FALLBACK_2D = 3  # embedding failed, 2D depiction coordinates (z = 0) kept on request

    NAMES = {NONE: "none", SOURCE: "source", RDKIT_3D: "rdkit_etkdg_mmff", FALLBACK_2D: "fallback_2d"}

    @classmethod
    def has_3d(cls, code: int) -> bool:
        return code in (cls.SOURCE, cls.RDKIT_3D)


@dataclass
class MoleculeRecord:
    """One molecule as stored in a shard.

    atom_features: int16 [N, 9] OGB atom features (raw vocabulary indices).
    bond_index:    int32 [E, 2] atom pairs, each chemical bond once.
    bond_features: int16 [E, 3] OGB bond features of those bonds.
    coordinates:   float32 [K, N, 3] K >= 0 conformers in Angstrom.
    targets:       float32 [T] labels, NaN where missing.
    """

    id: str
    smiles: str
    atom_features: np.ndarray
    bond_index: np.ndarray
    bond_features: np.ndarray
    coordinates: np.ndarray
    targets: np.ndarray
    geometry: int = Geometry.NONE

    @property
    def num_atoms(self) -> int:
        return int(self.atom_features.shape[0])

    @property
    def atomic_numbers(self) -> np.ndarray:
        # OGB's first atom feature is the index into [1, 2, ..., 118, misc].
        return self.atom_features[:, 0].astype(np.int64) + 1

    def validate(self) -> None:
        """Raise ValueError if array shapes or dtypes are inconsistent."""
        n = self.num_atoms
        if not (self.atom_features.ndim == 2 and self.atom_features.shape[1] == NUM_ATOM_FEATURES):
            raise ValueError(f"atom_features shape {self.atom_features.shape}, expected (N, {NUM_ATOM_FEATURES})")
        if not (self.bond_index.ndim == 2 and self.bond_index.shape[1] == 2):
            raise ValueError(f"bond_index shape {self.bond_index.shape}, expected (E, 2)")
        if self.bond_features.shape != (self.bond_index.shape[0], NUM_BOND_FEATURES):
            raise ValueError(f"bond_features shape {self.bond_features.shape}, expected "
                             f"({self.bond_index.shape[0]}, {NUM_BOND_FEATURES})")
        if not (self.coordinates.ndim == 3 and self.coordinates.shape[1:] == (n, 3)):
            raise ValueError(f"coordinates shape {self.coordinates.shape}, expected (K, {n}, 3)")
        if self.targets.ndim != 1:
            raise ValueError(f"targets shape {self.targets.shape}, expected (T,)")
        if self.bond_index.size and not (self.bond_index.min() >= 0 and self.bond_index.max() < n):
            raise ValueError("bond_index refers to atoms outside the molecule")
