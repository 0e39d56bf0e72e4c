"""Whole-split metrics for property prediction.

ROC-AUC cannot be averaged over batches, so validation collects every prediction in a
fairseq meter and scores the split at once.
"""
import re
from typing import List

import numpy as np
from fairseq.logging.meters import Meter
from sklearn.metrics import roc_auc_score


def mean_roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC averaged over the tasks whose labelled rows hold both classes (OGB's rule);
    NaN labels are ignored. NaN when no task has both classes."""
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    scores = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    aucs = []
    for task in range(labels.shape[1]):
        labelled = ~np.isnan(labels[:, task])
        y = labels[labelled, task]
        if y.size and 0 < y.sum() < y.size:
            aucs.append(roc_auc_score(y, scores[labelled, task]))
    return float(np.mean(aucs)) if aucs else float("nan")


class RocAucMeter(Meter):
    """Collects (labels, scores) of every batch; its value is the split's mean ROC-AUC."""

    def __init__(self):
        self.labels: List[np.ndarray] = []
        self.scores: List[np.ndarray] = []

    def reset(self):
        self.labels, self.scores = [], []

    def update(self, labels, scores):
        self.labels.append(np.asarray(labels, dtype=np.float32))
        self.scores.append(np.asarray(scores, dtype=np.float32))

    def state_dict(self):
        return {}  # a split's predictions are not worth keeping in checkpoints

    def load_state_dict(self, state_dict):
        self.reset()

    @property
    def smoothed_value(self) -> float:
        if not self.labels:
            return float("nan")
        return round(mean_roc_auc(np.concatenate(self.labels), np.concatenate(self.scores)), 4)


def metric_key(target_name: str) -> str:
    """A target's name as part of a metric name: lower-case letters, digits and
    underscores ("measured log solubility in mols per litre" -> "measured_log_solubility_in_
    mols_per_litre"), so logs, TensorBoard and --best-checkpoint-metric can use it. The
    original names stay in the manifest and in the reports."""
    key = re.sub(r"[^0-9a-z]+", "_", target_name.lower()).strip("_")
    return key or "target"
