"""OGB's molecule property benchmarks (`ogbg-molhiv`, `ogbg-molpcba`, ... of
`ogb.graphproppred`) in OGB's raw download layout, with OGB's own split:

    ROOT/ogbg_molhiv/mapping/mol.csv.gz         task columns, smiles, mol_id; row i is graph i
    ROOT/ogbg_molhiv/split/scaffold/train.csv.gz  graph indices, one per line, no header
    ROOT/ogbg_molhiv/split/scaffold/valid.csv.gz
    ROOT/ogbg_molhiv/split/scaffold/test.csv.gz

Number of tasks, task type, evaluation metric and split kind come from the installed
`ogb` package's `graphproppred/master.csv`. Files are only read, never downloaded.
"""
from __future__ import annotations

import csv
import gzip
import importlib.resources
import os

import numpy as np

from ..splits import SPLIT_NAMES
from .base import (InputError, RawEntry, Source, TargetSpec, check_columns, csv_rows, parse_labels,
                   read_csv_header)

MOL_FILE = os.path.join("mapping", "mol.csv.gz")
NOT_TASKS = ("smiles", "mol_id")
UNASSIGNED = -1


def ogb_datasets() -> dict[str, dict]:
    """name -> master.csv entry of every molecule dataset of ogb.graphproppred.

    Read from the package's files: importing ogb.graphproppred would load torch."""
    text = importlib.resources.files("ogb").joinpath("graphproppred", "master.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines()))
    names = rows[0][1:]
    table = {name: {row[0]: row[1 + i] for row in rows[1:]} for i, name in enumerate(names)}
    return {name: info for name, info in table.items() if info.get("data type") == "mol"}


def dataset_folder(root: str, name: str) -> str:
    """ROOT/ogbg_molhiv as OGB names it (hyphens become underscores), or ROOT itself when
    it is that folder."""
    for folder in (os.path.join(root, name.replace("-", "_")), root):
        if os.path.exists(os.path.join(folder, MOL_FILE)):
            return folder
    raise FileNotFoundError(f"no {name.replace('-', '_')}/{MOL_FILE} under {root} (OGB's raw layout; "
                            "data_prep does not download)")


def read_indices(path: str) -> np.ndarray:
    """The graph indices of an OGB split file; InputError naming the file and line when a
    line is not an integer."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"OGB split file {path} not found")
    indices = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                indices.append(int(text))
            except ValueError:
                raise InputError(f"{path} line {number}: {text!r} is not a graph index") from None
    return np.asarray(indices, dtype=np.int64)


def split_of_graphs(paths: dict[str, str], num_graphs: int) -> np.ndarray:
    """Each graph's split (an index into SPLIT_NAMES) from OGB's split files; InputError
    naming the file when an index is out of range or in two splits, or when a graph is
    in none."""
    split = np.full(num_graphs, UNASSIGNED, dtype=np.int8)
    for code, name in enumerate(SPLIT_NAMES):
        indices = read_indices(paths[name])
        outside = indices[(indices < 0) | (indices >= num_graphs)]
        if len(outside):
            raise InputError(f"{paths[name]}: index {outside[0]} is out of range: mol.csv.gz has "
                             f"{num_graphs} molecules (0 to {num_graphs - 1})")
        unique, counts = np.unique(indices, return_counts=True)
        if (counts > 1).any():
            raise InputError(f"{paths[name]}: index {unique[counts > 1][0]} is listed twice")
        taken = indices[split[indices] != UNASSIGNED]
        if len(taken):
            other = SPLIT_NAMES[split[taken[0]]]
            raise InputError(f"{paths[name]}: index {taken[0]} is also in {paths[other]}: "
                             "the splits must be disjoint")
        split[indices] = code
    missing = np.flatnonzero(split == UNASSIGNED)
    if len(missing):
        raise InputError(f"{os.path.dirname(paths['train'])}: {len(missing)} of {num_graphs} molecules "
                         f"are in no split file (first: index {missing[0]})")
    return split


class OgbMoleculeSource(Source):
    """An ogbg-mol* dataset. A record's id is its OGB graph index (its row of
    mol.csv.gz); OGB's split is used as it is."""

    name = "ogb"

    def __init__(self, name: str, root: str):
        datasets = ogb_datasets()
        if name not in datasets:
            raise ValueError(f"unknown OGB molecule dataset {name!r}; known: {sorted(datasets)}")
        self.dataset = name
        self.info = datasets[name]
        self.folder = dataset_folder(root, name)
        self.mol_path = os.path.join(self.folder, MOL_FILE)
        header = read_csv_header(self.mol_path)
        check_columns(self.mol_path, header, list(NOT_TASKS))
        self.task_columns = [c for c in header if c not in NOT_TASKS]
        num_tasks = int(self.info["num tasks"])
        if len(self.task_columns) != num_tasks:
            raise InputError(f"{self.mol_path}: {len(self.task_columns)} task columns, {name} has {num_tasks} "
                             f"(columns found: {header})")
        self.classification = self.info["task type"] == "binary classification"
        split_folder = os.path.join(self.folder, "split", self.info["split"])
        self.split_paths = {n: os.path.join(split_folder, f"{n}.csv.gz") for n in SPLIT_NAMES}
        num_graphs = sum(1 for _ in csv_rows(self.mol_path))
        self.graph_split = split_of_graphs(self.split_paths, num_graphs)

    def files(self):
        return [self.mol_path] + [self.split_paths[n] for n in SPLIT_NAMES]

    def targets(self):
        task_type = "classification" if self.classification else "regression"
        return [TargetSpec(column, "", task_type) for column in self.task_columns]

    def entries(self):
        for row, fields, problem in csv_rows(self.mol_path):
            if fields is None:
                yield RawEntry(row=row, id=str(row), smiles="", reject=("malformed_row", problem))
                continue
            labels, reject = parse_task_labels([fields[c] for c in self.task_columns], self.task_columns,
                                               self.classification)
            yield RawEntry(row=row, id=str(row), smiles=fields["smiles"], targets=labels, reject=reject)

    def split(self, rows, ids, scaffolds):
        given = self.graph_split[rows]
        return {name: np.flatnonzero(given == code) for code, name in enumerate(SPLIT_NAMES)}

    def describe(self):
        return {"name": self.dataset, "task_type": self.info["task type"]}

    def split_description(self):
        return {"method": "ogb", "folder": f"split/{self.info['split']}"}

    def source_fields(self):
        # the names ogb.graphproppred.Evaluator is called with
        return {"ogb": {"name": self.dataset, "eval_metric": self.info["eval metric"]}}


def parse_task_labels(values, names, classification: bool):
    """Labels of one row (NaN where missing); a binary task's labels must be 0 or 1."""
    labels, reject = parse_labels(values, names)
    if reject is None and classification:
        for value, name, label in zip(values, names, labels):
            if not (np.isnan(label) or label in (0.0, 1.0)):
                return [], ("invalid_label", f"{name}={value!r} is not 0 or 1")
    return labels, reject
