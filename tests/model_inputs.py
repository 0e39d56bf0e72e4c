"""Small real molecules turned into padded model batches for the model tests."""
from functools import lru_cache

import torch

from moleblend_plugin.data.collate import collate_molecules, molecule_inputs
from moleblend_data.featurize import FeaturizeOptions, make_record
from moleblend_plugin.models.moleblend import MoleBlendConfig, MoleBlendEncoder
from moleblend_plugin.modules import relation_mixing as mixing

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
SALT = "CC(=O)[O-].[Na+]"
ETHANOL = "CCO"
NAPHTHOL = "Oc1ccc2ccccc2c1"


@lru_cache(maxsize=None)
def record(smiles: str, seed: int = 0):
    return make_record(smiles, FeaturizeOptions(num_conformers=1, seed=seed), id=smiles, targets=[0.0])


def batch_of(*smiles: str, with_3d: bool = True):
    return collate_molecules([molecule_inputs(record(s), 0 if with_3d else None) for s in smiles])


def all_modalities(batch):
    """Every pair of real atoms sees its SPD, edge and 3D relations (no blend)."""
    mask = batch["atom_mask"]
    return mixing.whole_modalities(mask[:, :, None] & mask[:, None, :], (mixing.SPD, mixing.EDGE, mixing.DISTANCE))


def tiny_config(**overrides) -> MoleBlendConfig:
    values = dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=32, encoder_attention_heads=4,
                  num_3d_bias_kernel=16, relation_head_dim=8, dropout=0.0, attention_dropout=0.0,
                  act_dropout=0.0)
    values.update(overrides)
    return MoleBlendConfig(**values)


def build_encoder(pretraining=True, num_targets=1, seed=0, **overrides) -> MoleBlendEncoder:
    torch.manual_seed(seed)
    return MoleBlendEncoder(tiny_config(**overrides), num_targets, pretraining)


class CriterionModel(torch.nn.Module):
    """The encoder plus the `cfg` the criterion reads, as the fairseq model provides."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.cfg = encoder.cfg

    def forward(self, batch):
        return self.encoder(batch)


def rotation(seed: int = 0) -> torch.Tensor:
    """A random proper rotation matrix."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
