"""Criterion `moleblend_pretrain`: weighted sum of the relation losses and the noisy-node loss.

L = w_spd CE_spd + w_edge CE_edge + w_3d L_3d + w_noise L_noise. Each term is a mean
over the pairs (or atoms) it covers in the batch; terms whose head the pretraining mode
does not build are absent. Logged (train and valid): every term, SPD accuracy, edge
accuracy (per hop), 3D distance MAE in Angstrom (or the cosine of the relative-position
vectors), and the cosine between predicted and true noise.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from .grouped_cross_entropy import grouped_cross_entropy
from .relation_targets import bond_feature_sizes, off_diagonal_pairs, relative_positions, spd_classes


@dataclass
class PretrainCriterionConfig(FairseqDataclass):
    spd_loss_weight: float = field(default=1.0, metadata={"help": "weight of the SPD classification loss"})
    edge_loss_weight: float = field(default=1.0, metadata={"help": "weight of the per-hop bond classification loss"})
    distance_loss_weight: float = field(default=1.0, metadata={"help": "weight of the 3D relation loss"})
    noise_loss_weight: float = field(default=1.0, metadata={"help": "weight of the noisy-node loss"})
    distance_loss: ChoiceEnum(["l1", "mse"]) = field(default="l1", metadata={"help": "loss of the clean-distance regression (Angstrom)"})
    noise_loss: ChoiceEnum(["cosine", "mse"]) = field(
        default="cosine", metadata={"help": "noisy-node loss: 1 - cosine(predicted, true noise) per atom (Transformer-M), or MSE"})


def _mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return total / count.clamp(min=1)


@register_criterion("moleblend_pretrain", dataclass=PretrainCriterionConfig)
class PretrainCriterion(FairseqCriterion):
    def __init__(self, task, spd_loss_weight, edge_loss_weight, distance_loss_weight, noise_loss_weight,
                 distance_loss, noise_loss):
        super().__init__(task)
        self.weights = {"spd": spd_loss_weight, "edge": edge_loss_weight, "3d": distance_loss_weight,
                        "noise": noise_loss_weight}
        self.distance_loss = str(distance_loss)
        self.noise_loss = str(noise_loss)

    def forward(self, model, sample, reduce=True):
        batch = sample["net_input"]["batch"]
        output = model(**sample["net_input"])
        terms, log = self.compute_terms(model, output, batch)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        log.update({"loss": loss.detach(), "nsentences": sample["nsentences"], "ntokens": sample["ntokens"],
                    "sample_size": 1})
        return loss, 1, log

    def compute_terms(self, model, output, batch):
        """Loss terms (means) and logging sums/counts."""
        atom_mask = batch["atom_mask"]
        pairs = off_diagonal_pairs(atom_mask)
        terms, log = {}, {}
        if "spd_logits" in output:
            target = spd_classes(batch["spd"], model.cfg.max_spd_class).unsqueeze(-1)
            ce, correct = grouped_cross_entropy(output["spd_logits"], target, pairs, [output["spd_logits"].shape[-1]])
            count = pairs.sum()
            terms["spd"] = _mean(ce, count)
            log.update(spd_loss_sum=ce.detach(), spd_correct=correct, spd_pairs=count)
        if "edge_logits" in output:
            # Per hop on the path: the mean of the cross-entropies of the 3 bond features;
            # a hop counts as correct when all three are.
            hops = output["edge_logits"].shape[3]
            path = batch["edge_path"][:, :, :, :hops]
            valid = (path[..., 0] >= 0) & pairs[..., None]
            ce, correct = grouped_cross_entropy(output["edge_logits"], path, valid, bond_feature_sizes())
            count = valid.sum()
            terms["edge"] = _mean(ce, count)
            log.update(edge_loss_sum=ce.detach(), edge_correct=correct, edge_hops=count)
        has_3d = batch["has_3d"]
        pairs_3d = pairs & has_3d[:, None, None]
        if "distance_pred" in output:
            clean = relative_positions(batch["coordinates"])[pairs_3d]
            pred = output["distance_pred"][pairs_3d].float()
            count = pairs_3d.sum()
            if pred.dim() == 1:
                error = pred - clean.norm(dim=-1)
                per_pair = error.abs() if self.distance_loss == "l1" else error ** 2
                log.update(distance_abs_error=error.abs().sum().detach())
            else:
                cosine = F.cosine_similarity(pred, clean, dim=-1)
                per_pair = 1.0 - cosine
                log.update(vector_cosine_sum=cosine.sum().detach())
            terms["3d"] = _mean(per_pair.sum(), count)
            log.update(distance_loss_sum=per_pair.sum().detach(), distance_pairs=count)
        if "noise_pred" in output:
            atoms_3d = atom_mask & has_3d[:, None]
            pred, true = output["noise_pred"][atoms_3d].float(), output["noise"][atoms_3d].float()
            cosine = F.cosine_similarity(pred, true, dim=-1)
            per_atom = 1.0 - cosine if self.noise_loss == "cosine" else ((pred - true) ** 2).sum(-1)
            count = atoms_3d.sum()
            terms["noise"] = _mean(per_atom.sum(), count)
            log.update(noise_loss_sum=per_atom.sum().detach(), noise_cosine_sum=cosine.sum().detach(),
                       noise_atoms=count)
        if not terms:
            raise RuntimeError("no loss term: the batch has no pair or atom the pretraining mode can score")
        return terms, {k: (v.item() if torch.is_tensor(v) else v) for k, v in log.items()}

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        metrics.log_scalar("loss", total("loss") / max(total("sample_size"), 1), total("sample_size"), round=4)
        ratios = {
            "spd_loss": ("spd_loss_sum", "spd_pairs"), "spd_acc": ("spd_correct", "spd_pairs"),
            "edge_loss": ("edge_loss_sum", "edge_hops"), "edge_acc": ("edge_correct", "edge_hops"),
            "distance_loss": ("distance_loss_sum", "distance_pairs"),
            "distance_mae": ("distance_abs_error", "distance_pairs"),
            "vector_cosine": ("vector_cosine_sum", "distance_pairs"),
            "noise_loss": ("noise_loss_sum", "noise_atoms"), "noise_cosine": ("noise_cosine_sum", "noise_atoms"),
        }
        for name, (numerator, denominator) in ratios.items():
            count = total(denominator)
            if count and any(numerator in log for log in logging_outputs):
                metrics.log_scalar(name, total(numerator) / count, count, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
