"""PCQM4Mv2 in OGB's raw layout: `pcqm4m-v2/raw/data.csv.gz` (idx, smiles, homolumogap),
`pcqm4m-v2-train.sdf` (DFT geometry of the training molecules, record i = idx i) and
OGB's `pcqm4m-v2/split_dict.pt`. A molecule with an SDF record is that record as RDKit's SDF
reader reads it (stereo from the DFT geometry), checked to be the molecule of its SMILES;
the others are their SMILES."""
from __future__ import annotations

import csv
import os

import numpy as np

from .base import RawEntry, Source, TargetSpec, check_columns, iter_sdf_blocks, open_text, parse_labels, read_csv_header

SPLIT_NAMES = ("train", "valid", "test-dev", "test-challenge")


def find_layout(root: str) -> str:
    """The folder holding raw/data.csv.gz: `root` itself or root/pcqm4m-v2."""
    for folder in (os.path.join(root, "pcqm4m-v2"), root):
        if os.path.exists(os.path.join(folder, "raw", "data.csv.gz")):
            return folder
    raise FileNotFoundError(f"no pcqm4m-v2/raw/data.csv.gz under {root}")


def load_split_dict(path: str) -> dict[str, np.ndarray]:
    """OGB's split_dict.pt (a torch-saved dict of index arrays), loaded with
    weights_only=True and only numpy's array classes allowed."""
    import torch  # only this source needs it

    try:
        from numpy._core.multiarray import _reconstruct  # numpy 2
    except ImportError:
        from numpy.core.multiarray import _reconstruct  # numpy 1
    # Pickles name the function by the module that wrote them (numpy.core under numpy 1,
    # numpy._core under numpy 2); both names are allowed, for the one function.
    allowed = [np.ndarray, np.dtype] + [type(np.dtype(t)) for t in (np.int64, np.int32)] + [
        (_reconstruct, f"{module}._reconstruct") for module in ("numpy.core.multiarray", "numpy._core.multiarray")]
    with torch.serialization.safe_globals(allowed):
        loaded = torch.load(path, weights_only=True)
    return {name: np.asarray(values, dtype=np.int64) for name, values in loaded.items()}


class Pcqm4mv2Source(Source):
    name = "pcqm4mv2"
    has_ids = True

    def __init__(self, root: str, sdf: str | None = None, split_file: str | None = None):
        self.folder = find_layout(root)
        self.csv_path = os.path.join(self.folder, "raw", "data.csv.gz")
        check_columns(self.csv_path, read_csv_header(self.csv_path), ["idx", "smiles", "homolumogap"])
        candidates = [sdf] if sdf else [os.path.join(d, "pcqm4m-v2-train.sdf")
                                        for d in (root, self.folder, os.path.join(self.folder, "raw"))]
        self.sdf_path = next((p for p in candidates if p and os.path.exists(p)), None)
        if sdf and self.sdf_path is None:
            raise FileNotFoundError(sdf)
        self.split_path = split_file or os.path.join(self.folder, "split_dict.pt")
        if not os.path.exists(self.split_path):
            raise FileNotFoundError(f"OGB split file {self.split_path} not found")

    def files(self):
        return [self.csv_path, self.split_path] + ([self.sdf_path] if self.sdf_path else [])

    def targets(self):
        return [TargetSpec("homolumogap", "eV", "regression")]

    def entries(self):
        blocks = iter_sdf_blocks(self.sdf_path) if self.sdf_path else iter(())
        with open_text(self.csv_path) as f:
            for row, fields in enumerate(csv.DictReader(f)):
                labels, reject = parse_labels([fields["homolumogap"]], ["homolumogap"])
                block = next(blocks, None)
                yield RawEntry(row=row, id=fields["idx"].strip(), smiles=fields["smiles"],
                               targets=labels, geometry_block=block, reject=reject)

    def split(self, rows, ids, scaffolds):
        split_dict = load_split_dict(self.split_path)
        idx = np.asarray([int(i) for i in ids], dtype=np.int64)
        sorter = np.argsort(idx, kind="stable")
        result = {}
        for name in [n for n in SPLIT_NAMES if n in split_dict] + [n for n in split_dict if n not in SPLIT_NAMES]:
            wanted = split_dict[name]
            at = np.minimum(np.searchsorted(idx, wanted, sorter=sorter), max(len(idx) - 1, 0))
            found = (idx[sorter[at]] == wanted) if len(idx) else np.zeros(len(wanted), bool)
            result[name] = np.sort(sorter[at[found]])
        return result

    def describe(self):
        return {"geometry": "pcqm4m-v2-train.sdf" if self.sdf_path else "none"}

    def split_description(self):
        return {"method": "ogb", "file": os.path.basename(self.split_path)}
