"""QM9: the tabular file (`qm9.csv`, geometry in `XYZ_Ang`) or the `gdb9.sdf` +
`gdb9.sdf.csv` layout. Targets are stored in the units papers report them in."""
from __future__ import annotations

import csv
import os
from itertools import zip_longest

from ..splits import random_split
from .base import (RawEntry, Source, TargetSpec, check_columns, csv_rows, iter_sdf_blocks, open_text,
                   parse_labels, read_csv_header, sdf_title)

HARTREE_TO_MEV = 27211.386245988  # CODATA 2018
# Valid and test sizes of the usual random QM9 split (train is the rest).
VALID_SIZE = 10_000
TEST_SIZE = 10_831

# name, unit, column in qm9.csv, column in gdb9.sdf.csv, factor to the unit
QM9_TARGETS = [
    ("mu", "D", "Dipole_debye", "mu", 1.0),
    ("alpha", "bohr^3", "Polarizability_bohr3", "alpha", 1.0),
    ("homo", "meV", "HOMO_au", "homo", HARTREE_TO_MEV),
    ("lumo", "meV", "LUMO_au", "lumo", HARTREE_TO_MEV),
    ("gap", "meV", "HOMO_LUMO_gap_au", "gap", HARTREE_TO_MEV),
    ("r2", "bohr^2", "R2_bohr2", "r2", 1.0),
    ("zpve", "meV", "ZPVE_au", "zpve", HARTREE_TO_MEV),
    ("U0", "meV", "InternalEnergy_0K_au", "u0", HARTREE_TO_MEV),
    ("U", "meV", "InternalEnergy_298K_au", "u298", HARTREE_TO_MEV),
    ("H", "meV", "Enthalphy_298K_au", "h298", HARTREE_TO_MEV),
    ("G", "meV", "GibbsFreeEnergy_298K_au", "g298", HARTREE_TO_MEV),
    ("Cv", "cal/mol K", "Heatcapacity_Cv_cal_mol_K", "cv", 1.0),
]


def parse_coordinates(text: str) -> list[float]:
    """"[[0.59,0.,1.],...]" -> flat list of floats (the file writes numbers like "0.", not JSON)."""
    return [float(v) for v in text.replace("[", " ").replace("]", " ").split(",") if v.strip()]


def parse_elements(text: str) -> list[str]:
    """"['C','H','H']" -> ['C', 'H', 'H']"""
    return [e.strip().strip("'\"") for e in text.strip().strip("[]").split(",") if e.strip()]


class Qm9Source(Source):
    name = "qm9"
    has_ids = True

    def __init__(self, path: str, seed: int = 0, valid_size: int = VALID_SIZE,
                 test_size: int = TEST_SIZE):
        self.seed, self.valid_size, self.test_size = seed, valid_size, test_size
        if path.endswith(".sdf") or path.endswith(".sdf.csv"):
            self.layout = "gdb9_sdf"
            self.sdf_path = path[:-4] if path.endswith(".csv") else path
            self.csv_path = self.sdf_path + ".csv"
            header = read_csv_header(self.csv_path)
            check_columns(self.csv_path, header, ["mol_id"] + [t[3] for t in QM9_TARGETS])
            skip = os.path.join(os.path.dirname(self.sdf_path), "uncharacterized.txt")
            self.uncharacterized_path = skip if os.path.exists(skip) else None
        else:
            self.layout = "tabular"
            self.csv_path = path
            header = read_csv_header(path)
            check_columns(path, header, ["Index", "SMILES", "Elements", "XYZ_Ang"] + [t[2] for t in QM9_TARGETS])

    def files(self):
        if self.layout == "tabular":
            return [self.csv_path]
        return [self.sdf_path, self.csv_path] + ([self.uncharacterized_path] if self.uncharacterized_path else [])

    def targets(self):
        return [TargetSpec(name, unit, "regression", column)
                for name, unit, column, _, _ in QM9_TARGETS]

    def _labels(self, fields, column_index):
        columns = [t[column_index] for t in QM9_TARGETS]
        labels, reject = parse_labels([fields[c] for c in columns], columns)
        return [v * t[4] for v, t in zip(labels, QM9_TARGETS)], reject

    def entries(self):
        if self.layout == "tabular":
            for row, fields, problem in csv_rows(self.csv_path):
                if fields is None:
                    yield RawEntry(row=row, id=str(row), smiles="", reject=("malformed_row", problem))
                    continue
                labels, reject = self._labels(fields, 2)
                try:
                    xyz = (parse_elements(fields["Elements"]), parse_coordinates(fields["XYZ_Ang"]))
                except ValueError as error:
                    xyz, reject = None, reject or ("geometry_mismatch", f"unreadable geometry: {error}")
                yield RawEntry(row=row, id=fields["Index"].strip(), smiles=fields["SMILES"],
                               targets=labels, xyz=xyz, reject=reject)
            return
        skip = set()
        if self.uncharacterized_path:
            skip = set(read_uncharacterized(self.uncharacterized_path))
        with open_text(self.csv_path) as f:
            rows = csv.DictReader(f)
            for row, (block, fields) in enumerate(zip_longest(iter_sdf_blocks(self.sdf_path), rows)):
                if block is None or fields is None:
                    raise ValueError(f"{self.sdf_path} and {self.csv_path} hold different numbers "
                                     f"of molecules (they differ from row {row} on)")
                labels, reject = self._labels(fields, 3)
                mol_id = fields["mol_id"].strip()
                title = sdf_title(block)
                if title and title != mol_id:
                    raise ValueError(f"{self.sdf_path} record {row} is {title!r} but row {row} of "
                                     f"{self.csv_path} is {mol_id!r}: the files are not in the same order")
                number = int(mol_id.split("_")[-1]) if mol_id.split("_")[-1].isdigit() else None
                if number in skip:
                    reject = reject or ("uncharacterized", "listed in uncharacterized.txt")
                yield RawEntry(row=row, id=mol_id, molblock=block, molblock_is_3d=True,
                               targets=labels, reject=reject)

    def split(self, rows, ids, scaffolds):
        return random_split(len(rows), self.seed, valid_size=self.valid_size, test_size=self.test_size)

    def describe(self):
        return {"layout": self.layout}

    def split_description(self):
        return {"method": "random", "seed": self.seed, "valid_size": self.valid_size, "test_size": self.test_size}


def read_uncharacterized(path: str) -> list[int]:
    """Molecule numbers listed in QM9's uncharacterized.txt (lines of "number ..." after a header)."""
    numbers = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            first = line.split()[:1]
            if first and first[0].isdigit():
                numbers.append(int(first[0]))
    return numbers
