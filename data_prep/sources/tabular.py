"""Any CSV with a SMILES column and label columns, and any SDF file."""
from __future__ import annotations


from ..splits import random_split, scaffold_split
from .base import (RawEntry, Source, TargetSpec, check_columns, csv_rows, iter_sdf_blocks,
                   parse_labels, read_csv_header, sdf_properties, sdf_title)


class SplitMixin:
    """Random or scaffold split on a flag."""

    split_method = "random"
    fractions = (0.8, 0.1, 0.1)
    seed = 0

    @property
    def needs_scaffolds(self) -> bool:
        return self.split_method == "scaffold"

    def split(self, rows, ids, scaffolds):
        if self.split_method == "scaffold":
            return scaffold_split(scaffolds, self.fractions)
        return random_split(len(rows), self.seed, self.fractions)

    def split_description(self) -> dict:
        return {"method": self.split_method, "fractions": list(self.fractions),
                **({"seed": self.seed} if self.split_method == "random" else {})}


class CsvSource(SplitMixin, Source):
    name = "csv"

    def __init__(self, path: str, smiles_column: str, targets: list[TargetSpec],
                 id_column: str | None = None, split: str = "random",
                 fractions=(0.8, 0.1, 0.1), seed: int = 0, hint: str = ""):
        self.path = path
        self.smiles_column = smiles_column
        self._targets = targets
        self.id_column = id_column
        self.has_ids = id_column is not None
        self.split_method = split
        self.fractions = tuple(fractions)
        self.seed = seed
        header = read_csv_header(path)
        wanted = [smiles_column] + [t.column or t.name for t in targets] + ([id_column] if id_column else [])
        check_columns(path, header, wanted, hint)

    def files(self):
        return [self.path]

    def targets(self):
        return self._targets

    def entries(self):
        columns = [t.column or t.name for t in self._targets]
        for row, fields, problem in csv_rows(self.path):
            if fields is None:
                yield RawEntry(row=row, id=str(row), smiles="", reject=("malformed_row", problem))
                continue
            labels, reject = parse_labels([fields[c] for c in columns], columns)
            yield RawEntry(row=row, id=fields[self.id_column].strip() if self.id_column else str(row),
                           smiles=fields[self.smiles_column], targets=labels, reject=reject)

    def describe(self):
        return {"smiles_column": self.smiles_column, "id_column": self.id_column,
                "split": self.split_description()}


class SdfSource(SplitMixin, Source):
    """Molecules of an SDF file; their 3D conformers (when the file has 3D coordinates)
    are the source geometry. Labels and ids come from the records' data fields."""

    name = "sdf"

    def __init__(self, path: str, targets: list[TargetSpec], id_property: str | None = None,
                 split: str = "random", fractions=(0.8, 0.1, 0.1), seed: int = 0):
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
