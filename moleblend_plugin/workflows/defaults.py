"""Fine-tuning settings chosen from the dataset, printed so that a run can be repeated by hand.

The rules are fixed in advance, not tuned on any test split:
- metric: ROC-AUC for classification (maximized), RMSE for regression (MoleculeNet's);
- batch size: 32 below 2,000 training molecules, else 64;
- epochs: 100 below 2,000 training molecules, 50 below 20,000, 20 above (a small set
  needs more passes for the same number of updates);
- Adam, learning rate 2e-4 after 20 warm-up updates, gradient norm clipped at 5, dropout
  0.1 (the settings of examples/finetune/cpu_results.sh);
- architecture: the pretrained checkpoint's, else `moleblend_small`.
Every one of them can be set on the command line; the choice is printed with its reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from ..criterions.property_metrics import higher_is_better

SMALL_SET = 2_000
MEDIUM_SET = 20_000


@dataclass
class FinetuneSettings:
    arch: str
    metric: str
    maximize: bool
    batch_size: int
    max_epoch: int
    lr: float
    warmup_updates: int = 20
    clip_norm: float = 5.0
    dropout: float = 0.1
    reasons: Optional[List[str]] = None


def choose_settings(num_train: int, task_type: str, pretrained_arch: str = "", arch: str = "",
                    metric: str = "", batch_size: int = 0, max_epoch: int = 0, lr: float = 0.0) -> FinetuneSettings:
    """Settings for a dataset of num_train training molecules; non-empty arguments win."""
    reasons = []
    if not metric:
        metric = "auc" if task_type == "classification" else "rmse"
        reasons.append(f"metric {metric}: {task_type} targets")
    if not arch:
        arch = pretrained_arch or "moleblend_small"
        reasons.append(f"arch {arch}: " + ("the pretrained checkpoint's" if pretrained_arch else "no pretrained checkpoint"))
    if not batch_size:
        batch_size = 32 if num_train < SMALL_SET else 64
        reasons.append(f"batch size {batch_size}: {num_train} training molecules")
    if not max_epoch:
        max_epoch = 100 if num_train < SMALL_SET else 50 if num_train < MEDIUM_SET else 20
        reasons.append(f"{max_epoch} epochs: {num_train} training molecules")
    if not lr:
        lr = 2e-4
        reasons.append("learning rate 2e-4 (Adam, 20 warm-up updates, clip norm 5, dropout 0.1)")
    return FinetuneSettings(arch, metric, higher_is_better(metric), batch_size, max_epoch, lr, reasons=reasons)
