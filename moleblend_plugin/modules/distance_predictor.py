"""Interatomic distances predicted from the 2D graph by a frozen pretrained model.

The paper's "2D + predicted 3D" fine-tuning input (its Table 11): for a dataset without
geometries, the pretrained trunk sees each molecule's SPD and edge relations only, its
distance head predicts every pair's distance, and those distances are the 3D input of
the model being fine-tuned.
"""
import torch
import torch.nn as nn

from . import relation_mixing as mixing
from .molecule_encoder import MoleculeEncoder
from .relation_heads import OuterProductHead


def symmetric_distances(raw: torch.Tensor, pair_mask: torch.Tensor) -> torch.Tensor:
    """Distance head outputs [B, N, N] -> distances usable as 3D input.

    The head's bilinear form u_i^T W v_j is not symmetric, so both orders are averaged; it is
    a linear output, so it can be negative: clamped at 0 (a clamp, not a softplus, keeps the
    head's own value wherever it is non-negative). Self pairs are 0, as coordinates give (the
    pretraining loss never scored them), and padded pairs are 0.
    """
    distance = (0.5 * (raw + raw.transpose(1, 2))).clamp(min=0.0)
    eye = torch.eye(raw.shape[1], dtype=torch.bool, device=raw.device)
    return distance.masked_fill(~pair_mask | eye, 0.0)


class DistancePredictor(nn.Module):
    """A pretrained trunk and its distance head, frozen: no gradient, always in eval mode.

    Frozen rather than shared with the model being fine-tuned: fine-tuning has no distance
    target, so a shared trunk would drift and its "distances" would become whatever helps
    the property loss. Frozen, the predicted distances are a fixed function of the 2D graph,
    as conformers would be, and they are what the pretrained model predicts.
    """

    def __init__(self, molecule_encoder: MoleculeEncoder, distance_head: OuterProductHead):
        super().__init__()
        if distance_head.num_outputs != 1:
            raise ValueError("the distance predictor needs a head with one output per pair (the distance)")
        self.molecule_encoder = molecule_encoder
        self.distance_head = distance_head
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True):
        # Dropout stays off: a molecule's predicted distances do not change from step to step.
        return super().train(False)

    @torch.no_grad()
    def forward(self, batch) -> torch.Tensor:
        """[B, N, N] predicted distances (Angstrom) from the batch's SPD and edge relations."""
        atom_mask = batch["atom_mask"]
        pair_mask = atom_mask[:, :, None] & atom_mask[:, None, :]
        relations = mixing.whole_modalities(pair_mask, (mixing.SPD, mixing.EDGE))
        states = self.molecule_encoder(batch, relations).atom_states
        return symmetric_distances(self.distance_head(states).squeeze(-1), pair_mask)
