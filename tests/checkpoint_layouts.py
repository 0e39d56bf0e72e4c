"""State dicts with the key names and shapes of public Graphormer, Transformer-M and official
MoleBlend checkpoints, written from their module definitions (microsoft/Graphormer
graphormer/models/graphormer.py and modules/graphormer_{layers,graph_encoder,graph_encoder_layer}.py;
lsj2408/Transformer-M models/transformer_m.py and modules/transformer_m_{layers,encoder,encoder_layer}.py;
YudiZh/MoleBlend models/moleblend.py and modules/moleblend_{layers,encoder}.py).

Tensors are random where a test compares values and left uninitialised (`values=False`) where
it does not, so that base-sized dicts cost next to nothing.
"""
from typing import Dict

import torch

# The vocabulary sizes all three codes use: 512 * 9 atom features, 512 * 3 bond features,
# 512 degrees and spatial positions, 128 hop distances.
NUM_ATOMS, NUM_EDGES, NUM_DEGREE, NUM_SPATIAL, NUM_EDGE_DIS = 512 * 9, 512 * 3, 512, 512, 128


class Builder:
    def __init__(self, values: bool, seed: int = 0):
        self.values = values
        self.generator = torch.Generator().manual_seed(seed)
        self.state: Dict[str, torch.Tensor] = {}

    def add(self, key, *shape):
        self.state[key] = torch.randn(shape, generator=self.generator) if self.values else torch.empty(shape)

    def linear(self, key, out_dim, in_dim, bias=True):
        self.add(key + ".weight", out_dim, in_dim)
        if bias:
            self.add(key + ".bias", out_dim)

    def layer_norm(self, key, dim):
        self.add(key + ".weight", dim)
        self.add(key + ".bias", dim)


def _embeddings(b: Builder, node: str, bias: str, dim: int, heads: int):
    b.add(f"{node}.atom_encoder.weight", NUM_ATOMS + 1, dim)
    b.add(f"{node}.in_degree_encoder.weight", NUM_DEGREE, dim)
    b.add(f"{node}.out_degree_encoder.weight", NUM_DEGREE, dim)
    b.add(f"{node}.graph_token.weight", 1, dim)
    b.add(f"{bias}.edge_encoder.weight", NUM_EDGES + 1, heads)
    b.add(f"{bias}.edge_dis_encoder.weight", NUM_EDGE_DIS * heads * heads, 1)
    b.add(f"{bias}.spatial_pos_encoder.weight", NUM_SPATIAL, heads)
    b.add(f"{bias}.graph_token_virtual_distance.weight", 1, heads)


def _layers(b: Builder, prefix: str, layers: int, dim: int, ffn: int):
    for i in range(layers):
        p = f"{prefix}.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            b.linear(f"{p}.self_attn.{proj}", dim, dim)
        b.layer_norm(f"{p}.self_attn_layer_norm", dim)
        b.linear(f"{p}.fc1", ffn, dim)
        b.linear(f"{p}.fc2", dim, ffn)
        b.layer_norm(f"{p}.final_layer_norm", dim)


def _lm_head(b: Builder, dim: int, num_classes: int):
    b.linear("encoder.lm_head_transform_weight", dim, dim)
    b.layer_norm("encoder.layer_norm", dim)
    b.add("encoder.lm_output_learned_bias", 1)
    b.linear("encoder.embed_out", num_classes, dim, bias=False)


def graphormer(layers=12, dim=768, heads=32, ffn=768, pre_layernorm=True, num_classes=1, values=True, seed=0):
    """GraphormerModel: `graphormer_base` is 12 layers, 768 wide, 32 heads, FFN 768."""
    b = Builder(values, seed)
    g = "encoder.graph_encoder"
    _embeddings(b, f"{g}.graph_node_feature", f"{g}.graph_attn_bias", dim, heads)
    b.layer_norm(f"{g}.emb_layer_norm", dim)  # encoder_normalize_before (True in every named arch)
    if pre_layernorm:
        b.layer_norm(f"{g}.final_layer_norm", dim)
    _layers(b, g, layers, dim, ffn)
    b.linear("encoder.masked_lm_pooler", dim, dim)
    _lm_head(b, dim, num_classes)
    return b.state


def _transformer_m_trunk(b: Builder, layers, dim, heads, ffn, kernels, add_3d, atom_proc):
    m = "encoder.molecule_encoder"
    _embeddings(b, f"{m}.atom_feature", f"{m}.molecule_attn_bias", dim, heads)
    if add_3d:
        b.add(f"{m}.molecule_3d_bias.gbf.means.weight", 1, kernels)
        b.add(f"{m}.molecule_3d_bias.gbf.stds.weight", 1, kernels)
        b.add(f"{m}.molecule_3d_bias.gbf.mul.weight", NUM_EDGES, 1)
        b.add(f"{m}.molecule_3d_bias.gbf.bias.weight", NUM_EDGES, 1)
        b.linear(f"{m}.molecule_3d_bias.gbf_proj.layer1", kernels, kernels)
        b.linear(f"{m}.molecule_3d_bias.gbf_proj.layer2", heads, kernels)
        b.linear(f"{m}.molecule_3d_bias.edge_proj", dim, kernels)
    if atom_proc:
        for proj in ("q_proj", "k_proj", "v_proj"):
            b.linear(f"{m}.atom_proc.{proj}", dim, dim)
        for i in (1, 2, 3):
            b.linear(f"{m}.atom_proc.force_proj{i}", 1, dim)
    b.layer_norm(f"{m}.emb_layer_norm", dim)
    _layers(b, m, layers, dim, ffn)


def transformer_m(layers=12, dim=768, heads=32, ffn=768, kernels=128, add_3d=True, remove_head=False,
                  num_classes=1, values=True, seed=0):
    """TransformerM (pretraining, `transformer_m_base`), or with --remove-head its proj_out head."""
    b = Builder(values, seed)
    _transformer_m_trunk(b, layers, dim, heads, ffn, kernels, add_3d, atom_proc=True)
    b.linear("encoder.lm_head_transform_weight", dim, dim)
    b.layer_norm("encoder.layer_norm", dim)
    if remove_head:
        b.linear("encoder.proj_out.dense", dim, dim)
        b.linear("encoder.proj_out.out_proj", num_classes, dim)
    else:
        b.add("encoder.lm_output_learned_bias", 1)
        b.linear("encoder.embed_out", 1, dim, bias=False)
    return b.state


def moleblend_official(layers=12, dim=768, heads=32, ffn=768, kernels=128, relation_dim=32, spd_classes=11,
                       edge_hops=5, hidden_3d=256, values=True, seed=0):
    """The official MoleBlend pretraining model (MoleBlend + MoleBlendEncoder, not --remove-head)."""
    b = Builder(values, seed)
    m = "encoder.molecule_encoder"
    _transformer_m_trunk(b, layers, dim, heads, ffn, kernels, add_3d=True, atom_proc=True)
    for name in ("spd", "edge", "3d"):
        t = f"{m}.blend_{name}_pred_head.transform_n2_head"
        b.linear(f"{t}.column_head", relation_dim, dim)
        b.layer_norm(f"{t}.column_LayerNorm", relation_dim)
        b.linear(f"{t}.row_head", relation_dim, dim)
        b.layer_norm(f"{t}.row_LayerNorm", relation_dim)
    b.linear(f"{m}.blend_spd_pred_head.linear", spd_classes, relation_dim ** 2)
    b.linear(f"{m}.blend_edge_pred_head.linear_map_feature", 4 * 3 * 2 * edge_hops, relation_dim ** 2)
    b.linear(f"{m}.blend_3d_pred_head.linear", hidden_3d, relation_dim ** 2)
    for i in (1, 2, 3):
        b.linear(f"{m}.blend_3d_pred_head.force_proj{i}", 1, hidden_3d)
    _lm_head(b, dim, 1)
    return b.state
