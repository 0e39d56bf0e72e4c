"""Whole-split metrics for property prediction, shared by validation and `evaluate`.

ROC-AUC, average precision and R² cannot be averaged over batches, so validation collects
every prediction of the split in one fairseq meter and scores the split at once, with the
same function (`split_scores`) that `python -m moleblend_plugin.evaluate` uses.
"""
import logging
import math
import re
from typing import Dict, List, Optional, Sequence

import numpy as np
from fairseq.logging.meters import Meter
from sklearn.metrics import average_precision_score, roc_auc_score

logger = logging.getLogger(__name__)


def _per_target_mean(labels: np.ndarray, scores: np.ndarray, score) -> float:
    """`score` averaged over the targets whose labelled rows hold both classes (OGB's rule);
    NaN labels are ignored. NaN when no target has both classes."""
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    scores = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    values = []
    for task in range(labels.shape[1]):
        labelled = ~np.isnan(labels[:, task])
        y = labels[labelled, task]
        if y.size and 0 < y.sum() < y.size:
            values.append(score(y, scores[labelled, task]))
    return float(np.mean(values)) if values else float("nan")


def mean_roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC averaged over the targets with both classes (NaN labels ignored)."""
    return _per_target_mean(labels, scores, roc_auc_score)


def mean_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, sklearn's step-wise
    definition, as OGB) averaged over the targets with both classes."""
    return _per_target_mean(labels, scores, average_precision_score)


def metric_key(target_name: str) -> str:
    """A target's name as part of a metric name: lower-case letters, digits and
    underscores ("measured log solubility in mols per litre" -> "measured_log_solubility_in_
    mols_per_litre"), so logs, TensorBoard and --best-checkpoint-metric can use it. The
    original names stay in the manifest and in the reports."""
    key = re.sub(r"[^0-9a-z]+", "_", target_name.lower()).strip("_")
    return key or "target"


def _number(value) -> Optional[float]:
    """JSON has no NaN: a metric that is not defined is None."""
    value = float(value)
    return None if math.isnan(value) else value


def _regression(labels: np.ndarray, predictions: np.ndarray) -> Dict[str, Optional[float]]:
    """mae, rmse and R² over the labelled entries of [n, k] arrays, pooled over targets.

    R² = 1 - SS_res / SS_tot with each entry's deviation taken from its own target's mean
    over the split (a pooled mean would credit the model for targets that merely sit at
    different levels); with one target it is scikit-learn's r2_score. None when every
    label of every target is the same."""
    labelled = ~np.isnan(labels)
    count = int(labelled.sum())
    if not count:
        return {"mae": None, "rmse": None, "r2": None}
    error = np.where(labelled, predictions - np.nan_to_num(labels), 0.0)
    target_means = np.nanmean(np.where(labelled, labels, np.nan), axis=0, keepdims=True) if labels.size else labels
    deviation = np.where(labelled, np.nan_to_num(labels) - np.nan_to_num(target_means), 0.0)
    total = float((deviation ** 2).sum())
    squared = float((error ** 2).sum())
    return {"mae": float(np.abs(error).sum()) / count, "rmse": math.sqrt(squared / count),
            "r2": 1.0 - squared / total if total > 0 else None}


def ogb_score(name: str, labels: np.ndarray, predictions: np.ndarray) -> Optional[float]:
    """OGB's own `Evaluator(name)` metric of an `ogbg-mol*` dataset: ROC-AUC, average
    precision or RMSE (averaged over tasks), or None when it is not defined here (too few
    classes, or not every task of the dataset predicted)."""
    from ogb.graphproppred import Evaluator

    evaluator = Evaluator(name)
    if labels.shape[1] != evaluator.num_tasks:
        return None
    try:
        result = evaluator.eval({"y_true": labels, "y_pred": predictions})
    except RuntimeError as error:  # OGB: no task with both classes
        logger.debug("OGB evaluator %s: %s", name, error)
        return None
    return _number(result[evaluator.eval_metric])


def split_scores(task_type: str, labels, predictions, names: Sequence[str],
                 ogb: Optional[dict] = None) -> Dict[str, Optional[float]]:
    """The metrics of a whole split; labels and predictions [n, targets] in original units
    (predictions are probabilities for classification), NaN labels skipped.

    classification: auc, prc_auc (and auc_<target>, prc_auc_<target>);
    regression: mae, rmse, r2 (and mae_<target>, rmse_<target>, r2_<target>);
    with `ogb` ({"name": "ogbg-molhiv", "eval_metric": "rocauc"}): ogb_<eval_metric>.
    Per-target metrics come with every target; a metric that is not defined is None."""
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    predictions = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    scores: Dict[str, Optional[float]] = {}
    if task_type == "classification":
        scores["auc"] = _number(mean_roc_auc(labels, predictions))
        scores["prc_auc"] = _number(mean_average_precision(labels, predictions))
        for k, name in enumerate(names):
            column = (labels[:, k:k + 1], predictions[:, k:k + 1])
            scores[f"auc_{metric_key(name)}"] = _number(mean_roc_auc(*column))
            scores[f"prc_auc_{metric_key(name)}"] = _number(mean_average_precision(*column))
    else:
        scores.update(_regression(labels, predictions))
        for k, name in enumerate(names):
            for metric, value in _regression(labels[:, k:k + 1], predictions[:, k:k + 1]).items():
                scores[f"{metric}_{metric_key(name)}"] = value
    if ogb:
        scores[f"ogb_{ogb['eval_metric']}"] = ogb_score(ogb["name"], labels, predictions)
    return scores


# Hidden from the logs by its leading underscore (fairseq logs only keys without one).
SPLIT_METER = "_split_predictions"


class SplitPredictionsMeter(Meter):
    """Collects (labels, predictions) of every batch of one validation pass; `scores` are
    the split's metrics (computed once), which derived meters report one by one."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.labels: List[np.ndarray] = []
        self.predictions: List[np.ndarray] = []
        self.task_type, self.names, self.ogb = "regression", [], None
        self._scores = None

    def update(self, labels, predictions, task_type, names, ogb=None):
        self.labels.append(np.asarray(labels, dtype=np.float32))
        self.predictions.append(np.asarray(predictions, dtype=np.float32))
        self.task_type, self.names, self.ogb = task_type, list(names), ogb
        self._scores = None

    @property
    def scores(self) -> Dict[str, Optional[float]]:
        if self._scores is None:
            if not self.labels:
                return {}
            self._scores = split_scores(self.task_type, np.concatenate(self.labels),
                                        np.concatenate(self.predictions), self.names, self.ogb)
        return self._scores

    def state_dict(self):
        return {}

    def load_state_dict(self, state_dict):
        self.reset()

    @property
    def smoothed_value(self) -> float:
        return float("nan")  # never logged itself (leading underscore)


def split_metric_names(task_type: str, names: Sequence[str], ogb: Optional[dict]) -> List[str]:
    """The metrics validation logs from `split_scores`, one derived meter each; per-target
    ones only with 2+ targets (with one they repeat the overall metric)."""
    if task_type == "classification":
        base = ["auc", "prc_auc"]
    else:
        base = ["mae", "rmse", "r2"]
    per_target = [f"{metric}_{metric_key(name)}" for name in names for metric in base] if len(names) > 1 else []
    return base + per_target + ([f"ogb_{ogb['eval_metric']}"] if ogb else [])


def log_split_predictions(labels, predictions, task_type: str, names: Sequence[str], ogb: Optional[dict],
                          skip=()) -> None:
    """Add a validation batch's predictions to the split being scored and log the split's
    metrics (split_metric_names, less `skip`) as fairseq derived meters.

    The predictions go only into the temporary aggregators of the validation pass (fairseq's
    `validate` scores those). fairseq's named aggregators ("valid" among them) live for
    the whole run and are saved in checkpoints: predictions of every pass would pile up
    there, and fairseq cannot rebuild a meter class of the plugin when a run resumes."""
    from fairseq import metrics

    named = {id(metrics.get_meters(name)) for name in metrics.state_dict()}
    for aggregator in metrics.get_active_aggregators():
        if id(aggregator) in named:
            continue
        if SPLIT_METER not in aggregator:
            aggregator.add_meter(SPLIT_METER, SplitPredictionsMeter(), priority=50)
        aggregator[SPLIT_METER].update(labels, predictions, task_type, names, ogb)
    for name in split_metric_names(task_type, names, ogb):
        if name not in skip:
            metrics.log_derived(name, lambda meters, name=name: _rounded(meters[SPLIT_METER].scores.get(name))
                                if SPLIT_METER in meters else float("nan"))


def _rounded(value) -> float:
    return float("nan") if value is None else round(value, 4)


MAXIMIZED = ("auc", "prc_auc", "r2", "ogb_rocauc", "ogb_ap")


def higher_is_better(metric: str) -> bool:
    """Whether --best-checkpoint-metric `metric` needs --maximize-best-checkpoint-metric
    (auc, prc_auc, r2, ogb_rocauc, ogb_ap and their per-target forms)."""
    return any(metric == base or metric.startswith(base + "_") for base in MAXIMIZED) and not metric.startswith("ogb_rmse")
