"""fairseq dataset over prepared shards: record -> model inputs, batched by size."""
from typing import Optional

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

from .collate import collate_molecules, molecule_inputs
from moleblend_data.molecule import Geometry
from moleblend_data.relations import MULTI_HOP_MAX_DIST


class MoleculeDataset(FairseqDataset):
    """Items are molecules of one split.

    conformers: "random" draws one of a molecule's conformers per epoch (seeded by seed,
    epoch and index, so every worker and every rerun agrees), "first" always takes the
    first, "none" gives no coordinates (2D-only input).
    """

    def __init__(self, shards, num_atoms: np.ndarray, conformers: str = "random", seed: int = 1,
                 shuffle: bool = True, max_hops: int = MULTI_HOP_MAX_DIST):
        if conformers not in ("random", "first", "none"):
            raise ValueError(f"conformers must be random, first or none, not {conformers!r}")
        if len(num_atoms) != len(shards):
            raise ValueError(f"{len(num_atoms)} sizes for {len(shards)} molecules")
        self.shards = shards
        self.sizes = np.asarray(num_atoms, dtype=np.int64)
        self.conformers = conformers
        self.seed = seed
        self.shuffle = shuffle
        self.max_hops = max_hops
        self.epoch = 1
        # Columns of each record's targets handed to the model (None: all).
        self.target_columns = None

    def set_epoch(self, epoch):
        self.epoch = epoch

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False  # the conformer choice changes with the epoch

    def _conformer(self, record, index: int) -> Optional[int]:
        count = record.coordinates.shape[0]
        if self.conformers == "none" or count == 0 or not Geometry.has_3d(record.geometry):
            return None
        if self.conformers == "first" or count == 1:
            return 0
        with data_utils.numpy_seed(self.seed, self.epoch, index):
            return int(np.random.randint(count))

    def __getitem__(self, index):
        record = self.shards[index]
        item = molecule_inputs(record, self._conformer(record, index), self.max_hops)
        if self.target_columns is not None:
            item["targets"] = item["targets"][self.target_columns]
        item["index"] = index
        item["id"] = record.id
        return item

    def __len__(self):
        return len(self.shards)

    def num_tokens(self, index):
        return int(self.sizes[index]) + 1  # atoms + graph token

    def size(self, index):
        return self.num_tokens(index)

    def ordered_indices(self):
        # Random order, then a stable sort by size, so batches hold molecules of similar
        # size (little padding); fairseq shuffles the batches themselves every epoch.
        if not self.shuffle:
            return np.arange(len(self), dtype=np.int64)
        with data_utils.numpy_seed(self.seed, self.epoch):
            order = np.random.permutation(len(self))
        return order[np.argsort(self.sizes[order], kind="stable")]

    def collater(self, samples):
        if not samples:
            return {}
        batch = collate_molecules(samples)
        return {
            "id": torch.tensor([s["index"] for s in samples], dtype=torch.long),
            "molecule_ids": [s["id"] for s in samples],
            "nsentences": len(samples),
            "ntokens": int(batch["atom_mask"].sum()),
            "net_input": {"batch": batch},
        }
