"""Equivariant noisy-node head: predicts each atom's coordinate noise.

An attention over the final atom states (with the pair bias the encoder used) weights
the unit vectors (r_j - r_i)/|r_j - r_i|: out_i = sum_j p_ij u_ij (x) v_j, and one linear
map, shared by the three axes, turns each axis' features into a component. Attention
weights are rotation invariant and the map acts on features only, so the prediction
rotates with the molecule.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .encoder_layer import split_heads


class NoiseHead(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        # No bias: a constant added to every axis would break equivariance.
        self.force_proj = nn.Linear(embed_dim, 1, bias=False)

    def _probabilities(self, atom_states, pair_bias):
        q = split_heads(self.q_proj(atom_states), self.num_heads) * self.head_dim ** -0.5
        k = split_heads(self.k_proj(atom_states), self.num_heads)
        return torch.softmax((q @ k.transpose(-1, -2) + pair_bias).float(), dim=-1)  # fp32

    def forward(self, atom_states: torch.Tensor, pair_bias: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """atom_states [B, N, D], pair_bias [B, H, N, N], directions [B, N, N, 3] -> [B, N, 3]

        force_proj is linear, so it is taken into v_proj: with f_h the map's weights of head
        h, g_hj = f_h . (W_v h_j + b_v)_h is one [D -> H] linear map of the atom states, and
        out_ic = sum_j u_ijc sum_h p_hij g_hj. The same sums as `forward_reference` in another
        order, without its [B, H, 3, N, head_dim] products and its D x D value projection.
        """
        probs = self._probabilities(atom_states, pair_bias)
        f = self.force_proj.weight.view(self.num_heads, 1, self.head_dim)
        value_weight = torch.bmm(f, self.v_proj.weight.view(self.num_heads, self.head_dim, -1)).squeeze(1)  # [H, D]
        value_bias = (f.squeeze(1) * self.v_proj.bias.view(self.num_heads, self.head_dim)).sum(-1)
        per_head = F.linear(atom_states, value_weight, value_bias)  # g [B, N, H]
        pair_weights = (probs * per_head.transpose(1, 2).unsqueeze(2)).sum(1)  # [B, N, N]
        return (directions.type_as(pair_weights) * pair_weights.unsqueeze(-1)).sum(2)

    def forward_reference(self, atom_states: torch.Tensor, pair_bias: torch.Tensor,
                          directions: torch.Tensor) -> torch.Tensor:
        """The head as stated: per-axis attention outputs of every head, then force_proj."""
        b, n, _ = atom_states.shape
        probs = self._probabilities(atom_states, pair_bias)
        v = split_heads(self.v_proj(atom_states), self.num_heads)
        probs = probs.type_as(v)
        # [B, H, N, N] x [B, N, N, 3] -> [B, H, 3, N, N]; then weights over partners of v
        weighted = probs.unsqueeze(2) * directions.permute(0, 3, 1, 2).unsqueeze(1).type_as(probs)
        out = weighted @ v.unsqueeze(2)  # [B, H, 3, N, head_dim]
        out = out.permute(0, 3, 2, 1, 4).reshape(b, n, 3, -1)
        return self.force_proj(out).squeeze(-1)
