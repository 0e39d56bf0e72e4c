"""Equivariant noisy-node head: predicts each atom's coordinate noise.

An attention over the final atom states (with the pair bias the encoder used) weights
the unit vectors (r_j - r_i)/|r_j - r_i|: out_i = sum_j p_ij u_ij (x) v_j, and one linear
map, shared by the three axes, turns each axis' features into a component. Attention
weights are rotation invariant and the map acts on features only, so the prediction
rotates with the molecule.
"""
import torch
import torch.nn as nn


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

    def forward(self, atom_states: torch.Tensor, pair_bias: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """atom_states [B, N, D], pair_bias [B, H, N, N], directions [B, N, N, 3] -> [B, N, 3]"""
        b, n, _ = atom_states.shape

        def heads(x):
            return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        q = heads(self.q_proj(atom_states)) * self.head_dim ** -0.5
        k, v = heads(self.k_proj(atom_states)), heads(self.v_proj(atom_states))
        probs = torch.softmax((q @ k.transpose(-1, -2) + pair_bias).float(), dim=-1).type_as(q)
        # [B, H, N, N] x [B, N, N, 3] -> [B, H, 3, N, N]; then weights over partners of v
        weighted = probs.unsqueeze(2) * directions.permute(0, 3, 1, 2).unsqueeze(1).type_as(q)
        out = weighted @ v.unsqueeze(2)  # [B, H, 3, N, head_dim]
        out = out.permute(0, 3, 2, 1, 4).reshape(b, n, 3, -1)
        return self.force_proj(out).squeeze(-1)
