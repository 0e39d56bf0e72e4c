"""A subset of a molecule dataset: the molecules of a split that a task can use."""
import numpy as np
from fairseq.data import BaseWrapperDataset


class MoleculeSubset(BaseWrapperDataset):
    """The molecules of `dataset` where `keep` is True, in the dataset's own order and
    batching (its ordered_indices, restricted to the kept molecules)."""

    def __init__(self, dataset, keep: np.ndarray):
        super().__init__(dataset)
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(dataset),):
            raise ValueError(f"keep has shape {keep.shape}, expected ({len(dataset)},)")
        self.keep = keep
        self.positions = np.flatnonzero(keep)  # subset position -> dataset index
        self.position_of = np.full(len(dataset), -1, dtype=np.int64)
        self.position_of[self.positions] = np.arange(len(self.positions))

    def __getitem__(self, index):
        item = self.dataset[int(self.positions[index])]
        item["index"] = index  # a batch's "id" counts molecules of this subset, as fairseq expects
        return item

    def __len__(self):
        return len(self.positions)

    @property
    def sizes(self):
        return self.dataset.sizes[self.positions]

    def num_tokens(self, index):
        return self.dataset.num_tokens(int(self.positions[index]))

    def size(self, index):
        return self.dataset.size(int(self.positions[index]))

    def ordered_indices(self):
        order = self.dataset.ordered_indices()
        return self.position_of[order[self.keep[order]]]
