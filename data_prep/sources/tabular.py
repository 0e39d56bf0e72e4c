"""Any CSV with a SMILES column and label columns, and any SDF file: one file, split
here or by a split column (property) of the user's, or a train file with valid and/or
test files of the same layout."""
from __future__ import annotations

import logging
import os
from array import array
from dataclasses import replace

import numpy as np

from ..splits import SPLIT_NAMES, SplitPlan, split_name
from .base import (InputError, RawEntry, Source, TargetSpec, check_columns, csv_rows, iter_sdf_blocks,
                   parse_labels, read_csv_header, sdf_properties, sdf_title)

log = logging.getLogger("data_prep")
NO_SPLIT = -1  # a row without a readable split label (a malformed row, rejected anyway)


class TabularSource(Source):
    """What the csv and sdf sources share: their input files and their split.

    split: "random" or "scaffold"; with split_field or valid/test files given, it only
        says how `folds` are formed.
    split_field: a column (property) holding each row's split: train, valid or test.
    valid_path, test_path: files of the valid and test molecules; `path` is then the train
        file. Rows are numbered on across the files: train, then valid, then test. Without
        an id field, ids are the split and the row in its file ("valid:12"); with one, an
        id found in two files is an InputError.
    folds, fold: cross-validation (see SplitPlan).
    """

    id_field: str | None = None

    def __init__(self, path: str, split: str = "random", fractions=(0.8, 0.1, 0.1), seed: int = 0,
                 split_field: str | None = None, valid_path: str | None = None,
                 test_path: str | None = None, folds: int = 0, fold: int = 0):
        self.path = path
        extra = [(name, p) for name, p in (("valid", valid_path), ("test", test_path)) if p]
        if split_field and extra:
            raise ValueError("a split column (property) and separate valid/test files are two ways "
                             "to give the split: use one")
        self.inputs = [("train", path)] + extra if extra else [(None, path)]
        self.split_field = split_field
        self.first_rows = [0]
        self._given = None
        given = "column" if split_field else "files" if extra else None
        self.plan = SplitPlan(given=given, by=split, fractions=tuple(fractions), seed=seed,
                              folds=folds, fold=fold, column=split_field)

    @property
    def needs_scaffolds(self) -> bool:
        return self.plan.needs_scaffolds

    def files(self):
        return [path for _, path in self.inputs]

    # --- what csv and sdf read differently

    def _records(self, path: str):
        """(row in the file, record or None, problem) of every row of a file."""
        raise NotImplementedError

    def _value(self, record, name: str):
        raise NotImplementedError

    def _entry(self, row: int, row_in_file: int, record, problem: str, prefix: str) -> RawEntry:
        """The raw entry of a row; `prefix` ("valid:" etc. or "") goes before ids that are
        not from an id field."""
        raise NotImplementedError

    # ---

    def _read_given_split(self) -> None:
        """Each row's split, from the split field or from the file it is in (read before
        featurizing, so that a bad split label stops the build at once); with an id field
        and several files, check that no id is in two of them."""
        if self.plan.given is None:
            return
        codes = array("b")
        first_rows, owners = [], {}
        check_ids = self.id_field is not None and len(self.inputs) > 1
        for split, path in self.inputs:
            first_rows.append(len(codes))
            for row, record, _ in self._records(path):
                if record is None:
                    codes.append(NO_SPLIT)
                    continue
                if self.split_field is not None:
                    value = self._value(record, self.split_field)
                    name = split_name(value)
                    if name is None:
                        raise InputError(f"{path} row {row}: split {self.split_field!r} is {value!r}; "
                                         "expected train, valid or test")
                else:
                    name = split
                codes.append(SPLIT_NAMES.index(name))
                if check_ids:
                    mol_id = (self._value(record, self.id_field) or "").strip()
                    owner = owners.setdefault(mol_id, split)
                    if owner != split:
                        raise InputError(f"id {mol_id!r} is in both {dict(self.inputs)[owner]} and {path} "
                                         f"(row {row}): ids must not repeat across the split files")
        self.first_rows = first_rows
        self._given = np.frombuffer(codes, dtype=np.int8) if codes else np.zeros(0, np.int8)
        if self.plan.given == "files":
            ends = first_rows[1:] + [len(codes)]
            self.plan = replace(self.plan, files={
                split: {"name": os.path.basename(path), "rows": [start, end]}
                for (split, path), start, end in zip(self.inputs, first_rows, ends)})

    def entries(self):
        for (split, path), first in zip(self.inputs, self.first_rows):
            for row, record, problem in self._records(path):
                yield self._entry(first + row, row, record, problem, f"{split}:" if split else "")

    def split(self, rows, ids, scaffolds):
        given = self._given[rows] if self._given is not None else None
        try:
            parts = self.plan.divide(len(rows), scaffolds, given)
        except ValueError as error:
            raise InputError(f"{self.path}: {error}") from None
        if not len(parts["valid"]):
            log.warning("the valid split is empty (add --folds K --fold I to take it from train)")
        return parts

    def split_description(self):
        return self.plan.describe()


class CsvSource(TabularSource):
    name = "csv"

    def __init__(self, path: str, smiles_column: str, targets: list[TargetSpec],
                 id_column: str | None = None, split: str = "random",
                 fractions=(0.8, 0.1, 0.1), seed: int = 0, hint: str = "",
                 split_column: str | None = None, valid_path: str | None = None,
                 test_path: str | None = None, folds: int = 0, fold: int = 0):
        super().__init__(path, split, fractions, seed, split_column, valid_path, test_path, folds, fold)
        self.smiles_column = smiles_column
        self._targets = targets
        self.id_column = self.id_field = id_column
        self.has_ids = id_column is not None
        wanted = ([smiles_column] + [t.column or t.name for t in targets] + ([id_column] if id_column else [])
                  + ([split_column] if split_column else []))
        for _, file in self.inputs:
            check_columns(file, read_csv_header(file), wanted, hint)
        self._read_given_split()

    def targets(self):
        return self._targets

    def _records(self, path):
        return csv_rows(path)

    def _value(self, record, name):
        return record[name]

    def _entry(self, row, row_in_file, fields, problem, prefix):
        default_id = f"{prefix}{row_in_file}"
        if fields is None:
            return RawEntry(row=row, id=default_id, smiles="", reject=("malformed_row", problem))
        columns = [t.column or t.name for t in self._targets]
        labels, reject = parse_labels([fields[c] for c in columns], columns)
        return RawEntry(row=row, id=fields[self.id_column].strip() if self.id_column else default_id,
                        smiles=fields[self.smiles_column], targets=labels, reject=reject)

    def describe(self):
        return {"smiles_column": self.smiles_column, "id_column": self.id_column}


class SdfSource(TabularSource):
    """Molecules of an SDF file; their 3D conformers (when the file has 3D coordinates)
    are the source geometry. Labels, ids and a given split come from the records' data
    fields."""

    name = "sdf"

    def __init__(self, path: str, targets: list[TargetSpec], id_property: str | None = None,
                 split: str = "random", fractions=(0.8, 0.1, 0.1), seed: int = 0,
                 split_property: str | None = None, valid_path: str | None = None,
                 test_path: str | None = None, folds: int = 0, fold: int = 0):
        super().__init__(path, split, fractions, seed, split_property, valid_path, test_path, folds, fold)
        self._targets = targets
        self.id_property = self.id_field = id_property
        self.has_ids = id_property is not None
        self._read_given_split()

    def targets(self):
        return self._targets

    def _records(self, path):
        for row, block in enumerate(iter_sdf_blocks(path)):
            yield row, block, ""

    def _value(self, block, name):
        return sdf_properties(block).get(name)

    def _entry(self, row, row_in_file, block, problem, prefix):
        names = [t.column or t.name for t in self._targets]
        props = sdf_properties(block)
        labels, reject = parse_labels([props.get(n) for n in names], names)
        if self.id_property:
            mol_id = props.get(self.id_property, "").strip()
        else:
            mol_id = prefix + (sdf_title(block) or str(row_in_file))
        return RawEntry(row=row, id=mol_id, molblock=block, targets=labels, reject=reject)

    def describe(self):
        return {"id_property": self.id_property}
