"""Criterion `moleblend_finetune`: masked multi-task BCE, or regression on standardized targets.

Classification: binary cross-entropy over the labelled (non-NaN) entries only; validation
reports ROC-AUC and average precision over the whole split (targets with both classes,
as OGB). Regression: MSE or L1 on (y - mean) / std with the train-split statistics; MAE
and RMSE (training and validation) and R² (validation) in the targets' original units.
With 2+ targets, validation adds each metric per target; an OGB dataset adds OGB's own
`Evaluator` metric (`ogb_rocauc`, `ogb_ap`, `ogb_rmse`). See `property_metrics`.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from .property_metrics import log_split_predictions, metric_key


@dataclass
class FinetuneCriterionConfig(FairseqDataclass):
    regression_loss: ChoiceEnum(["mse", "l1"]) = field(
        default="mse", metadata={"help": "loss on standardized regression targets (L1 is the usual choice for QM9 MAE)"})


def standardize(values: torch.Tensor, mean, std) -> torch.Tensor:
    return (values - values.new_tensor(mean)) / values.new_tensor(std)


def destandardize(values: torch.Tensor, mean, std) -> torch.Tensor:
    return values * values.new_tensor(std) + values.new_tensor(mean)


@register_criterion("moleblend_finetune", dataclass=FinetuneCriterionConfig)
class FinetuneCriterion(FairseqCriterion):
    def __init__(self, task, regression_loss):
        super().__init__(task)
        self.regression_loss = str(regression_loss)

    def forward(self, model, sample, reduce=True):
        batch = sample["net_input"]["batch"]
        prediction = model(**sample["net_input"])["prediction"].float()
        targets = batch["targets"].float()
        labelled = ~torch.isnan(targets)
        count = labelled.sum()
        log = {"nsentences": sample["nsentences"], "ntokens": sample["ntokens"], "sample_size": 1,
               "labels": count.item()}
        if self.task.task_type == "classification":
            per_entry = F.binary_cross_entropy_with_logits(
                prediction[labelled], targets[labelled], reduction="none")
            values = torch.sigmoid(prediction)
        else:
            mean, std = self.task.target_mean, self.task.target_std
            error = prediction - standardize(torch.nan_to_num(targets), mean, std)
            per_entry = (error ** 2 if self.regression_loss == "mse" else error.abs())[labelled]
            original = (destandardize(prediction, mean, std) - torch.nan_to_num(targets)).detach()
            original = torch.where(labelled, original, torch.zeros_like(original))
            log["abs_error"] = original.abs().sum().item()
            log["sq_error"] = (original ** 2).sum().item()
            log["target_abs_error"] = original.abs().sum(0).tolist()
            log["target_labels"] = labelled.sum(0).tolist()
            log["target_names"] = [t["name"] for t in self.task.targets]
            values = destandardize(prediction, mean, std)
        if not model.training:  # the whole split is scored at once (property_metrics)
            log["split_labels"] = targets.cpu().numpy()
            log["split_predictions"] = values.detach().cpu().numpy()
            log["task_type"] = self.task.task_type
            log["split_target_names"] = [t["name"] for t in self.task.targets]
            log["ogb"] = getattr(self.task, "ogb", None)
        loss = per_entry.sum() / count.clamp(min=1)
        log["loss"] = loss.item()
        return loss, 1, log

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        metrics.log_scalar("loss", total("loss") / max(total("sample_size"), 1), total("sample_size"), round=4)
        labels = total("labels")
        if any("abs_error" in log for log in logging_outputs) and labels:
            metrics.log_scalar("mae", total("abs_error") / labels, labels, round=4)
            metrics.log_scalar_sum("_sq_error", total("sq_error"))
            metrics.log_scalar_sum("_labels", labels)
            metrics.log_derived("rmse", lambda meters: round(math.sqrt(meters["_sq_error"].sum / meters["_labels"].sum), 4))
            names = next(log["target_names"] for log in logging_outputs if "target_names" in log)
            if len(names) > 1:
                for k, name in enumerate(names):
                    n = sum(log["target_labels"][k] for log in logging_outputs if "target_labels" in log)
                    if n:
                        err = sum(log["target_abs_error"][k] for log in logging_outputs if "target_abs_error" in log)
                        metrics.log_scalar(f"mae_{metric_key(name)}", err / n, n, round=4)
        logged = {"mae", "rmse"}  # from the sums above, in training as in validation
        for log in logging_outputs:
            if "split_labels" in log:
                log_split_predictions(log["split_labels"], log["split_predictions"], log["task_type"],
                                      log["split_target_names"], log["ogb"],
                                      skip=logged | {f"mae_{metric_key(n)}" for n in log["split_target_names"]})

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return False  # per-batch predictions (ROC-AUC) and per-target lists
