"""Pretraining objectives: MoleBlend and the ablations of the paper's Tables 3 and 4.

Each mode says which relation encodings the encoder sees for every pair, which relation
heads predict full matrices, and whether coordinates are noised for the noisy-node loss.
"""
from dataclasses import dataclass
from typing import Callable, Tuple

from ogb.utils.features import get_bond_feature_dims

from ..modules import relation_mixing as mixing


def bond_feature_classes() -> Tuple[int, ...]:
    """Edge-head classes per hop: one classification per OGB bond feature (type, stereo,
    conjugation), which needs 13 outputs per hop instead of the 60 of their product."""
    return tuple(int(d) for d in get_bond_feature_dims())


def _blend(pair_mask, has_3d, encoder):
    return mixing.blend_input(mixing.sample_blend_sources(pair_mask, encoder.blend_ratio, has_3d))


def _masked(modality):
    def build(pair_mask, has_3d, encoder):
        keep = mixing.symmetric_keep_mask(pair_mask, encoder.cfg.mask_ratio)
        weights = {mixing.SPD: "spd", mixing.EDGE: "edge", mixing.DISTANCE: "distance"}
        return mixing.RelationInput(**{weights[modality]: keep})

    return build


def _whole_3d(pair_mask, has_3d, encoder):
    return mixing.whole_modalities(pair_mask, (mixing.DISTANCE,))


@dataclass(frozen=True)
class PretrainMode:
    description: str
    heads: Tuple[str, ...]
    noisy_node: bool
    relation_input: Callable


PRETRAIN_MODES = {
    "moleblend": PretrainMode(
        "blend SPD/edge/3D per pair, predict all three full matrices, plus noisy-node on the 3D input",
        ("spd", "edge", "3d"), True, _blend),
    "blend": PretrainMode("blend-then-predict without the noisy-node loss", ("spd", "edge", "3d"), False, _blend),
    "noisy_node": PretrainMode("3D input with noised coordinates, predict the noise only", (), True, _whole_3d),
    "mask_spd": PretrainMode("SPD input with --mask-ratio of its pairs hidden, predict the full SPD matrix",
                             ("spd",), False, _masked(mixing.SPD)),
    "mask_edge": PretrainMode("edge input with --mask-ratio of its pairs hidden, predict every pair's path bonds",
                              ("edge",), False, _masked(mixing.EDGE)),
    "mask_3d": PretrainMode("3D input with --mask-ratio of its pairs hidden, predict every pair's distance",
                            ("3d",), False, _masked(mixing.DISTANCE)),
}
