"""The Graphormer / Transformer-M encoder trunk with pluggable relation inputs.

Input: a padded batch (see `moleblend_plugin.data.collate`) and a `RelationInput`
saying which relation encodings enter the attention bias for each pair. Output: atom
states, the graph-token state and the atom-pair attention bias the layers saw.
"""
from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn as nn

from . import vocabulary as vocab
from .atom_embedding import AtomEmbedding
from .dropout import Dropout
from .encoder_layer import LAYER_NORM_EPS, BiasedEncoderLayer
from .gaussian_distance_bias import GaussianDistanceBias
from .graph_relation_bias import GraphRelationBias
from .relation_mixing import RelationInput

# Transformer-M scales the atom-level 3D features by this before adding them to the
# atom embeddings, so that they start as a small perturbation of the 2D embedding.
ATOM_3D_FEATURE_SCALE = 0.01


@dataclass
class EncoderOutput:
    atom_states: torch.Tensor  # [B, N, D]
    graph_state: torch.Tensor  # [B, D] graph-token state
    pair_bias: torch.Tensor  # [B, H, N, N] atom-pair bias of the layers (-inf on padded keys)
    directions: Optional[torch.Tensor]  # [B, N, N, 3] unit vectors, when 3D was encoded


def init_bert_params(module: nn.Module) -> None:
    """N(0, 0.02) weights, zero biases and padding rows (Graphormer's initialisation)."""
    if isinstance(module, nn.Linear):
        module.weight.data.normal_(mean=0.0, std=0.02)
        if module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.Embedding):
        module.weight.data.normal_(mean=0.0, std=0.02)
        if module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()


class MoleculeEncoder(nn.Module):
    def __init__(self, num_layers: int, embed_dim: int, ffn_embed_dim: int, num_heads: int,
                 dropout: float = 0.1, attention_dropout: float = 0.1, activation_dropout: float = 0.1,
                 droppath: float = 0.0, pre_layernorm: bool = False, num_kernels: int = 128,
                 multi_hop_max_dist: int = 5):
        super().__init__()
        self.num_heads = num_heads
        self.atom_feature = AtomEmbedding(embed_dim)
        self.molecule_attn_bias = GraphRelationBias(num_heads, multi_hop_max_dist)
        self.molecule_3d_bias = GaussianDistanceBias(num_heads, embed_dim, num_kernels)
        self.emb_layer_norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.dropout = Dropout(dropout)
        droppath_rates = torch.linspace(0, droppath, num_layers).tolist() if num_layers else []
        self.layers = nn.ModuleList(
            BiasedEncoderLayer(embed_dim, ffn_embed_dim, num_heads, dropout, attention_dropout,
                               activation_dropout, rate, pre_layernorm)
            for rate in droppath_rates
        )
        # The Gaussian layer keeps its own initialisation (kernel centres spread over 0-3 A).
        for part in (self.atom_feature, self.molecule_attn_bias, self.molecule_3d_bias.gbf_proj,
                     self.molecule_3d_bias.edge_proj, self.layers):
            part.apply(init_bert_params)

    def forward(self, batch: Dict[str, torch.Tensor], relations: RelationInput,
                coordinates: Optional[torch.Tensor] = None, distances: Optional[torch.Tensor] = None) -> EncoderOutput:
        """coordinates default to the batch's; `distances` ([B, N, N]) replace them as the 3D
        input when given (no directions then)."""
        atom_mask = batch["atom_mask"]
        pair_mask = atom_mask[:, :, None] & atom_mask[:, None, :]
        b, n = atom_mask.shape

        x = self.atom_feature.atoms(batch["atom_features"], atom_mask)
        bias = x.new_zeros(b, self.num_heads, n, n)
        if relations.spd is not None:
            bias = bias + self.molecule_attn_bias.spd_bias(batch["spd"], pair_mask) * relations.spd[:, None]
        if relations.edge is not None:
            edge = self.molecule_attn_bias.edge_bias(batch["edge_path"], batch["spd"])
            bias = bias + edge * relations.edge[:, None]
        directions = None
        if relations.distance is not None:
            if coordinates is None:
                coordinates = batch["coordinates"]
            pair_types = vocab.pair_type_index(batch["atomic_numbers"], atom_mask)
            if distances is not None:
                encoded = self.molecule_3d_bias.encode_distances(distances, pair_types, relations.distance)
            else:
                encoded = self.molecule_3d_bias(coordinates, pair_types, relations.distance)
            bias = bias + encoded.bias * relations.distance[:, None]
            x = x + ATOM_3D_FEATURE_SCALE * encoded.atom_features
            directions = encoded.directions
        if relations.uses_2d:
            x = x + self.atom_feature.degrees(batch["degree"], atom_mask)

        x = self.atom_feature.prepend_graph_token(x)
        full_bias = torch.nn.functional.pad(bias, (1, 0, 1, 0))
        full_bias = self.molecule_attn_bias.add_graph_token_distance(full_bias)
        key_padding = ~torch.nn.functional.pad(atom_mask, (1, 0), value=True)
        full_bias = full_bias.masked_fill(key_padding[:, None, None, :], float("-inf"))

        x = self.dropout(self.emb_layer_norm(x))
        for layer in self.layers:
            x = layer(x, full_bias)
        return EncoderOutput(
            atom_states=x[:, 1:], graph_state=x[:, 0], pair_bias=full_bias[:, :, 1:, 1:], directions=directions
        )
