"""Outer-product relation heads.

u_i = LN(GELU(W_u h_i)), v_j = LN(GELU(W_v h_j)) of dimension r, and a linear head on
z_ij = vec(u_i (x) v_j). The r^2-wide z_ij is never built: a linear map of
vec(u_i (x) v_j) with weight W_c (reshaped r x r) is the bilinear form u_i^T W_c v_j,
which costs N r (C r) + N^2 C r instead of N^2 r^2 C per molecule.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cpu_autocast import autocast_dtype

# The official heads use this LayerNorm epsilon.
HEAD_LAYER_NORM_EPS = 1e-12


class OuterProductHead(nn.Module):
    def __init__(self, embed_dim: int, rank: int, num_outputs: int):
        super().__init__()
        self.rank = rank
        self.num_outputs = num_outputs
        self.row_head = nn.Linear(embed_dim, rank)
        self.row_layer_norm = nn.LayerNorm(rank, eps=HEAD_LAYER_NORM_EPS)
        self.column_head = nn.Linear(embed_dim, rank)
        self.column_layer_norm = nn.LayerNorm(rank, eps=HEAD_LAYER_NORM_EPS)
        self.linear = nn.Linear(rank * rank, num_outputs)

    def factors(self, atom_states: torch.Tensor):
        u = self.row_layer_norm(F.gelu(self.row_head(atom_states)))
        v = self.column_layer_norm(F.gelu(self.column_head(atom_states)))
        return u, v

    def forward(self, atom_states: torch.Tensor) -> torch.Tensor:
        """[B, N, D] -> [B, N, N, C], a view of the product's [B, N, C, N] layout: making it
        contiguous would copy every logit once more, forward and backward."""
        u, v = self.factors(atom_states)
        b, n, _ = u.shape
        weight = self.linear.weight.view(self.num_outputs, self.rank, self.rank)
        left = torch.einsum("bia,cae->bice", u, weight).reshape(b, n * self.num_outputs, self.rank)
        if autocast_dtype(left.device.type) is not None:
            # the product in autocast's precision, the bias added in the parameters' (as
            # nn.Linear's bias is), so the logits keep it unrounded
            product = torch.bmm(left, v.transpose(1, 2)).view(b, n, self.num_outputs, n).transpose(2, 3)
            return product + self.linear.bias
        # bias added by the product (beta = 1), broadcast over batch and partners
        bias = self.linear.bias.repeat(n).unsqueeze(-1)
        return torch.baddbmm(bias, left, v.transpose(1, 2)).view(b, n, self.num_outputs, n).transpose(2, 3)

    def forward_materialized(self, atom_states: torch.Tensor) -> torch.Tensor:
        """The same function computed through the explicit r^2 outer product (reference)."""
        u, v = self.factors(atom_states)
        b, n, r = u.shape
        outer = (u[:, :, None, :, None] * v[:, None, :, None, :]).reshape(b, n, n, r * r)
        return self.linear(outer)
