"""What every source gives the build: raw entries, target descriptions and a split."""
from __future__ import annotations

import csv
import gzip
import math
import os
import re
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

MISSING_LABELS = {"", "nan", "na", "n/a", "none", "null"}


class InputError(ValueError):
    """An input file that cannot be read as a whole (encoding, empty file); names the file and line."""


@dataclass
class TargetSpec:
    name: str
    unit: str = ""
    task_type: str = "regression"  # "classification", "regression", or "auto" (decided from the values)
    column: str = ""  # column or property it is read from, when that differs from `name`


@dataclass
class RawEntry:
    """One molecule as read from the source, before featurization (cheap to send to a worker).

    row: 0-based data row (or SDF record) number in the input, header excluded.
    smiles / molblock: the molecule (one of them).
    xyz: (elements, coordinates) of a source geometry, hydrogens included; or
    geometry_block: a molfile of the molecule `smiles` names, whose conformer is the
        source geometry (the molfile is read as the molecule; the SMILES must agree).
    molblock_is_3d: the source states that its molfiles hold 3D geometries (QM9's DFT
        ones, some of which lie flat in z); else a molfile's coordinates are a geometry
        when they are 3D and not flat.
    reject: (reason, detail) when the source itself rejects the row.
    """

    row: int
    id: str
    smiles: str | None = None
    molblock: str | None = None
    targets: list = field(default_factory=list)
    xyz: tuple | None = None
    geometry_block: str | None = None
    molblock_is_3d: bool = False
    reject: tuple | None = None


# A plain decimal number: Python's float() also reads "1_000", "inf" and "nan", which no
# label file means.
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
FLOAT32_MAX = float(np.finfo(np.float32).max)


def parse_label(text) -> float:
    """A label value; NaN when missing. ValueError when it is not a finite number that
    float32 (the stored type) can hold."""
    if text is None:
        return math.nan
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        stripped = text.strip()
        if stripped.lower() in MISSING_LABELS:
            return math.nan
        if not NUMBER.fullmatch(stripped):
            raise ValueError(f"{stripped!r} is not a number")
        value = float(stripped)
    if math.isnan(value):
        return value
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise ValueError(f"{value!r} is not a finite number float32 can hold")
    return value


def parse_labels(values, names) -> tuple[list, tuple | None]:
    """Labels of one row, and a ("invalid_label", detail) reject when one is not a number."""
    labels = []
    for value, name in zip(values, names):
        try:
            labels.append(parse_label(value))
        except ValueError:
            return [], ("invalid_label", f"{name}={value!r}")
    return labels, None


def open_text(path: str):
    """Open a text file, gzip-compressed when its name ends in .gz."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_csv_header(path: str) -> list[str]:
    with open_text(path) as f:
        try:
            return next(csv.reader(f))
        except StopIteration:
            raise InputError(f"{path} is empty: expected a header line") from None
        except UnicodeDecodeError:
            raise not_utf8(path) from None


def csv_rows(path: str) -> Iterator[tuple[int, dict | None, str]]:
    """(row, fields, problem) of every data row of a CSV file: fields by column name, or
    None with the problem when the row has another number of cells than the header (a
    row that would otherwise get silently missing labels). InputError naming the line
    when the file is not UTF-8."""
    with open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
            for row, cells in enumerate(reader):
                if not cells:
                    yield row, None, "blank line"
                elif len(cells) != len(header):
                    yield row, None, f"{len(cells)} cells, the header has {len(header)}"
                else:
                    yield row, dict(zip(header, cells)), ""
        except StopIteration:
            raise InputError(f"{path} is empty: expected a header line") from None
        except UnicodeDecodeError:
            raise not_utf8(path) from None


def not_utf8(path: str) -> InputError:
    """The error for a file that is not UTF-8, naming its first line that is not (text is
    decoded in blocks, so the decoder's position does not say which line)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return InputError(f"{path} line {number}: not UTF-8 text (byte {line[error.start]:#04x} at "
                                  f"column {error.start + 1}); convert the file to UTF-8")
    return InputError(f"{path}: not UTF-8 text; convert the file to UTF-8")


def check_columns(path: str, header: list[str], wanted: list[str], hint: str = "") -> None:
    missing = [c for c in wanted if c not in header]
    if missing:
        message = (f"{os.path.basename(path)} has no column(s) {missing}; "
                   f"columns found: {header}")
        raise ValueError(message + (f". {hint}" if hint else ""))


def iter_sdf_blocks(path: str) -> Iterator[str]:
    """The text of each record of an SDF file (up to and excluding its '$$$$' line)."""
    with open_text(path) as f:
        lines = []
        for line in f:
            if line.startswith("$$$$"):
                yield "".join(lines)
                lines = []
            else:
                lines.append(line)
        if "".join(lines).strip():
            yield "".join(lines)


def sdf_properties(block: str) -> dict:
    """The '> <name>' data fields of an SDF record."""
    props, name, values = {}, None, []
    lines = block.split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("M  END")) + 1
    except StopIteration:
        return props
    for line in lines[start:]:
        if line.startswith(">"):
            if name is not None:
                props[name] = "\n".join(values).strip()
            begin, end = line.find("<"), line.find(">", line.find("<") + 1)
            name = line[begin + 1:end] if begin >= 0 and end > begin else None
            values = []
        elif name is not None:
            values.append(line)
    if name is not None:
        props[name] = "\n".join(values).strip()
    return props


def sdf_title(block: str) -> str:
    return block.split("\n", 1)[0].strip()


class Source:
    """Base of all sources. Subclasses set `name` and implement the methods below."""

    name = "source"
    # Ids come from the input (and so may repeat) rather than from row numbers.
    has_ids = False
    # The split needs each accepted molecule's Bemis-Murcko scaffold.
    needs_scaffolds = False

    def files(self) -> list[str]:
        raise NotImplementedError

    def targets(self) -> list[TargetSpec]:
        raise NotImplementedError

    def entries(self) -> Iterator[RawEntry]:
        raise NotImplementedError

    def split(self, rows: np.ndarray, ids: list[str], scaffolds: list[str] | None) -> dict[str, np.ndarray]:
        """Positions (into `rows`) of the accepted molecules of each split, in split order."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Source options recorded in the manifest (`source.options`)."""
        return {}

    def split_description(self) -> dict:
        """How the split was made, recorded in the manifest (`split`): its method and what
        it depends on (fractions, seed, the user's column or files, folds)."""
        return {}

    def source_fields(self) -> dict:
        """Further fields of the manifest's `source` (the benchmark a source stands for)."""
        return {}
