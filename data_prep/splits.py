"""Train / valid / test splits of the accepted molecules."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold


def murcko_scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES without stereochemistry ('' for acyclic molecules)."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return ""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_split(scaffolds: list[str], fractions=(0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """Deterministic scaffold split (Hu et al. 2020 protocol).

    Molecules are grouped by scaffold; groups are taken largest first (on equal size, the
    group whose first molecule comes later goes first) and each whole group goes to
    train while train stays within its share, else to valid while train + valid stay
    within theirs, else to test.
    """
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions {fractions} do not sum to 1")
    groups: dict[str, list[int]] = defaultdict(list)
    for position, scaffold in enumerate(scaffolds):
        groups[scaffold].append(position)
    ordered = sorted(groups.values(), key=lambda members: (len(members), members[0]), reverse=True)
    total = len(scaffolds)
    train_cap, valid_cap = fractions[0] * total, (fractions[0] + fractions[1]) * total
    train, valid, test = [], [], []
    for members in ordered:
        if len(train) + len(members) <= train_cap:
            train.extend(members)
        elif len(train) + len(valid) + len(members) <= valid_cap:
            valid.extend(members)
        else:
            test.extend(members)
    return {name: np.sort(np.asarray(part, dtype=np.int64))
            for name, part in (("train", train), ("valid", valid), ("test", test))}


def random_split(num: int, seed: int, fractions=(0.8, 0.1, 0.1), valid_size: int | None = None,
                 test_size: int | None = None) -> dict[str, np.ndarray]:
    """Random split with a fixed seed, by fractions or by valid/test counts (train = rest)."""
    order = np.random.default_rng(seed).permutation(num)
    if valid_size is None or test_size is None:
        if not np.isclose(sum(fractions), 1.0):
            raise ValueError(f"split fractions {fractions} do not sum to 1")
        valid_size = int(np.floor(fractions[1] * num))
        test_size = int(np.floor(fractions[2] * num))
    if valid_size + test_size > num:
        raise ValueError(f"{valid_size} valid + {test_size} test molecules asked of {num}")
    test = order[:test_size]
    valid = order[test_size:test_size + valid_size]
    train = order[test_size + valid_size:]
    return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}
