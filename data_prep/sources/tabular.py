"""Any CSV with a SMILES column and label columns, and any SDF file."""
from __future__ import annotations


import numpy as np

from ..splits import cross_validation_fold, random_split, scaffold_split
from .base import (RawEntry, Source, TargetSpec, check_columns, csv_rows, iter_sdf_blocks,
                   parse_labels, read_csv_header, sdf_properties, sdf_title)


SPLIT_NAMES = {"train": "train", "valid": "valid", "validation": "valid", "val": "valid", "test": "test"}


class SplitMixin:
    """The split of a generic source: random or scaffold by fractions, a split column, or
    separate train / valid / test files; then, optionally, fold `fold` of a k-fold
    cross-validation of the train part as the valid split."""

    split_method = "random"
    fractions = (0.8, 0.1, 0.1)
    seed = 0
    folds = 0
    fold = 0

    @property
    def needs_scaffolds(self) -> bool:
        return self.split_method == "scaffold"

    def given_split(self, rows) -> dict | None:
        """Positions of each split as the input assigns them (column or files); None when it does not."""
        return None

    def split(self, rows, ids, scaffolds):
        parts = self.given_split(rows)
        if parts is None:
            if self.split_method == "scaffold":
                parts = scaffold_split(scaffolds, self.fractions)
            else:
                parts = random_split(len(rows), self.seed, self.fractions)
        if self.folds:
            train_part = np.sort(np.concatenate([parts["train"], parts["valid"]]))
            train, valid = cross_validation_fold(train_part, self.folds, self.fold, self.seed,
                                                 scaffolds if self.split_method == "scaffold" else None)
            parts = {"train": train, "valid": valid, "test": parts["test"]}
        return parts

    def split_description(self) -> dict:
        described = self.given_split_description() or {
            "method": self.split_method, "fractions": list(self.fractions),
            **({"seed": self.seed} if self.split_method == "random" else {})}
        if self.folds:
            described["cross_validation"] = {
                "folds": self.folds, "fold": self.fold, "of": "train and valid of the split above",
                "grouped_by": "scaffold" if self.split_method == "scaffold" else "none",
                **({"seed": self.seed} if self.split_method != "scaffold" else {})}
        return described

    def given_split_description(self) -> dict | None:
        return None


class CsvSource(SplitMixin, Source):
    """Rows of one CSV file, or of separate train / valid / test files (`files`: role ->
    path, same columns). Rows are numbered across the files in the order train, valid,
    test; without an id column a row's id is its role and number in its file ("valid:3")."""

    name = "csv"

    def __init__(self, path: str, smiles_column: str, targets: list[TargetSpec],
                 id_column: str | None = None, split: str = "random",
                 fractions=(0.8, 0.1, 0.1), seed: int = 0, hint: str = "",
                 split_column: str | None = None, valid_path: str = "", test_path: str = "",
                 folds: int = 0, fold: int = 0):
        self.path = path
        self.smiles_column = smiles_column
        self._targets = targets
        self.id_column = id_column
        self.has_ids = id_column is not None
        self.split_method = split
        self.fractions = tuple(fractions)
        self.seed = seed
        self.split_column = split_column
        self.role_paths = {role: p for role, p in (("train", path), ("valid", valid_path), ("test", test_path)) if p}
        self.folds, self.fold = folds, fold
        if split_column and len(self.role_paths) > 1:
            raise ValueError("give the split as a column or as separate files, not both")
        if folds and not 2 <= folds:
            raise ValueError(f"--folds {folds}: give at least 2")
        if folds and not 0 <= fold < folds:
            raise ValueError(f"--fold {fold} of --folds {folds}: give 0 to {folds - 1}")
        if not folds and fold:
            raise ValueError("--fold needs --folds")
        wanted = [smiles_column] + [t.column or t.name for t in targets] + ([id_column] if id_column else []) \
            + ([split_column] if split_column else [])
        for file in self.role_paths.values():
            check_columns(file, read_csv_header(file), wanted, hint)
        self.role_of = self._assigned_roles() if split_column or len(self.role_paths) > 1 else None

    def files(self):
        return list(self.role_paths.values())

    def targets(self):
        return self._targets

    def _rows(self):
        """(global row, role, row in its file, fields, problem) of every row of every file."""
        offset = 0
        for role, path in self.role_paths.items():
            count = 0
            for row, fields, problem in csv_rows(path):
                yield offset + row, role, row, fields, problem
                count = row + 1
            offset += count

    def entries(self):
        columns = [t.column or t.name for t in self._targets]
        separate = len(self.role_paths) > 1
        for row, role, file_row, fields, problem in self._rows():
            default_id = f"{role}:{file_row}" if separate else str(row)
            if fields is None:
                yield RawEntry(row=row, id=default_id, smiles="", reject=("malformed_row", problem))
                continue
            labels, reject = parse_labels([fields[c] for c in columns], columns)
            yield RawEntry(row=row, id=fields[self.id_column].strip() if self.id_column else default_id,
                           smiles=fields[self.smiles_column], targets=labels, reject=reject)

    def _assigned_roles(self) -> dict:
        """Global row -> split, as the column or the files give it; read (and the column's
        values checked) before any molecule is featurized."""
        role_of = {}
        for row, role, file_row, fields, _ in self._rows():
            if self.split_column and fields is not None:
                value = fields[self.split_column].strip().lower()
                if value not in SPLIT_NAMES:
                    raise ValueError(f"{self.path} line {file_row + 2}: split column {self.split_column!r} "
                                     f"holds {fields[self.split_column]!r}; expected train, valid or test")
                role = SPLIT_NAMES[value]
            role_of[row] = role
        return role_of

    def given_split(self, rows):
        if self.role_of is None:
            return None
        roles = np.array([self.role_of[int(r)] for r in rows], dtype=object)
        return {name: np.flatnonzero(roles == name).astype(np.int64) for name in ("train", "valid", "test")}

    def given_split_description(self):
        if self.split_column:
            return {"method": "column", "column": self.split_column}
        if len(self.role_paths) > 1:
            return {"method": "files", "files": dict(self.role_paths)}
        return None

    def describe(self):
        return {"smiles_column": self.smiles_column, "id_column": self.id_column,
                "split": self.split_description()}


class SdfSource(SplitMixin, Source):
    """Molecules of an SDF file; their 3D conformers (when the file has 3D coordinates)
    are the source geometry. Labels and ids come from the records' data fields."""

    name = "sdf"

    def __init__(self, path: str, targets: list[TargetSpec], id_property: str | None = None,
                 split: str = "random", fractions=(0.8, 0.1, 0.1), seed: int = 0, folds: int = 0, fold: int = 0):
        if folds and not 0 <= fold < folds or fold and not folds:
            raise ValueError(f"--fold {fold} of --folds {folds}: give --folds K (at least 2) and --fold 0 to K-1")
        self.folds, self.fold = folds, fold
        self.path = path
        self._targets = targets
        self.id_property = id_property
        self.has_ids = id_property is not None
        self.split_method = split
        self.fractions = tuple(fractions)
        self.seed = seed

    def files(self):
        return [self.path]

    def targets(self):
        return self._targets

    def entries(self):
        names = [t.column or t.name for t in self._targets]
        for row, block in enumerate(iter_sdf_blocks(self.path)):
            props = sdf_properties(block)
            labels, reject = parse_labels([props.get(n) for n in names], names)
            if self.id_property:
                mol_id = props.get(self.id_property, "").strip()
            else:
                mol_id = sdf_title(block) or str(row)
            yield RawEntry(row=row, id=mol_id, molblock=block, targets=labels, reject=reject)

    def describe(self):
        return {"id_property": self.id_property, "split": self.split_description()}
