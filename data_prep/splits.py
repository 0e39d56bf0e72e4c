"""Train / valid / test splits of the accepted molecules."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

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


SPLIT_NAMES = ("train", "valid", "test")


def split_name(label) -> str | None:
    """'train', 'valid' or 'test' for a split label of the user's (any case, spaces
    around ignored); None for anything else."""
    if not isinstance(label, str):
        return None
    name = label.strip().lower()
    return name if name in SPLIT_NAMES else None


def fold_split(num: int, folds: int, seed: int, scaffolds: list[str] | None = None) -> list[np.ndarray]:
    """`folds` disjoint folds covering positions 0..num-1, each sorted.

    Without scaffolds: a seeded permutation cut into near-equal parts. With scaffolds:
    whole scaffold groups, the largest first (equal sizes in seeded random order), each
    to the fold that holds fewest molecules so far (the lowest-numbered on a tie). The
    same molecules, seed and number of folds give the same folds.
    """
    if folds < 2:
        raise ValueError(f"{folds} folds: cross-validation needs at least 2")
    rng = np.random.default_rng(seed)
    if scaffolds is None:
        if num < folds:
            raise ValueError(f"{num} molecules cannot fill {folds} folds")
        return [np.sort(part) for part in np.array_split(rng.permutation(num), folds)]
    groups: dict[str, list[int]] = defaultdict(list)
    for position, scaffold in enumerate(scaffolds):
        groups[scaffold].append(position)
    if len(groups) < folds:
        raise ValueError(f"{len(groups)} scaffold groups cannot fill {folds} folds")
    shuffled = [list(groups.values())[i] for i in rng.permutation(len(groups))]
    ordered = sorted(shuffled, key=len, reverse=True)  # stable: equal sizes keep the shuffled order
    parts: list[list[int]] = [[] for _ in range(folds)]
    for members in ordered:
        smallest = min(range(folds), key=lambda f: len(parts[f]))
        parts[smallest].extend(members)
    return [np.sort(np.asarray(part, dtype=np.int64)) for part in parts]


@dataclass(frozen=True)
class SplitPlan:
    """How the accepted molecules are divided into train, valid and test.

    given: None, the split is made here: `by` "random" (with `seed`) or "scaffold", by
        `fractions`; "column" or "files": each molecule's split is the user's (`column`
        names the column, `files` maps split -> {"name", "rows"} for the manifest).
    folds, fold: with folds = K > 0, the molecules outside test (train and valid of the
        split above) are cut into K folds (`fold_split`; whole scaffold groups when `by`
        is "scaffold"), fold `fold` becomes valid and the others train.
    """

    given: str | None = None
    by: str = "random"
    fractions: tuple = (0.8, 0.1, 0.1)
    seed: int = 0
    folds: int = 0
    fold: int = 0
    column: str | None = None
    files: dict | None = None

    def __post_init__(self):
        if self.given not in (None, "column", "files"):
            raise ValueError(f"unknown given split {self.given!r}: None, 'column' or 'files'")
        if self.by not in ("random", "scaffold"):
            raise ValueError(f"unknown split {self.by!r}: 'random' or 'scaffold'")
        if self.folds and not (self.folds >= 2 and 0 <= self.fold < self.folds):
            raise ValueError(f"fold {self.fold} of {self.folds}: folds must be at least 2 and "
                             f"fold between 0 and {max(self.folds - 1, 0)}")
        if not self.folds and self.fold:
            raise ValueError(f"fold {self.fold} asked without a number of folds")

    @property
    def method(self) -> str:
        return self.given or self.by

    @property
    def needs_scaffolds(self) -> bool:
        return self.by == "scaffold" and (self.given is None or self.folds > 0)

    def divide(self, num: int, scaffolds: list[str] | None = None,
               given: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Positions 0..num-1 of each split. `given`: the user's split per position, as an
        index into SPLIT_NAMES (for given splits)."""
        if self.given is not None:
            if given is None or len(given) != num:
                raise ValueError("a given split needs each molecule's split")
            parts = {name: np.flatnonzero(given == code) for code, name in enumerate(SPLIT_NAMES)}
        elif self.by == "scaffold":
            parts = scaffold_split(scaffolds, self.fractions)
        else:
            parts = random_split(num, self.seed, self.fractions)
        if not self.folds:
            return parts
        pool = np.sort(np.concatenate([parts["train"], parts["valid"]]))
        pool_scaffolds = [scaffolds[p] for p in pool] if self.by == "scaffold" else None
        folds = fold_split(len(pool), self.folds, self.seed, pool_scaffolds)
        valid = pool[folds[self.fold]]
        return {"train": np.setdiff1d(pool, valid), "valid": valid, "test": parts["test"]}

    def describe(self) -> dict:
        """The manifest's `split` entry."""
        description: dict = {"method": self.method}
        if self.given is None:
            description["fractions"] = list(self.fractions)
        if self.column is not None:
            description["column"] = self.column
        if self.files is not None:
            description["files"] = self.files
        if self.folds:
            description.update(folds=self.folds, fold=self.fold, folds_by=self.by)
        if (self.given is None and self.by == "random") or self.folds:
            description["seed"] = self.seed
        return description
