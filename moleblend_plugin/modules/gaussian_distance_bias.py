"""3D relation encoder: Gaussian basis kernels of interatomic distances.

psi_k(d_ij) = N(a_{t_i t_j} d_ij + c_{t_i t_j}; mu_k, sigma_k), K kernels, with the affine
(a, c) learned per pair of atom types; an MLP maps the kernels to per-head biases and a
linear map turns each atom's summed kernels into an atom-level 3D feature. Names and
shapes follow Transformer-M (`gbf.{means,stds,mul,bias}`, `gbf_proj`, `edge_proj`).
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import vocabulary as vocab

# sigma = |std| + this, so that no kernel collapses to a delta.
MIN_KERNEL_WIDTH = 0.01
# Unit pair vectors divide by (distance + this) so coincident atoms give a zero vector.
DIRECTION_EPS = 1e-5


class GaussianLayer(nn.Module):
    def __init__(self, num_kernels: int, num_pair_types: int = vocab.PAIR_TYPE_TABLE_SIZE):
        super().__init__()
        self.num_kernels = num_kernels
        self.means = nn.Embedding(1, num_kernels)
        self.stds = nn.Embedding(1, num_kernels)
        self.mul = nn.Embedding(num_pair_types, 1, padding_idx=0)
        self.bias = nn.Embedding(num_pair_types, 1, padding_idx=0)
        nn.init.uniform_(self.means.weight, 0, 3)
        nn.init.uniform_(self.stds.weight, 0, 3)
        nn.init.constant_(self.bias.weight, 0)
        nn.init.constant_(self.mul.weight, 1)

    def forward(self, distance: torch.Tensor, pair_types: torch.Tensor) -> torch.Tensor:
        """distance [B, N, N], pair_types [B, N, N, 2] -> kernels [B, N, N, K]."""
        mul = self.mul(pair_types).sum(dim=-2)
        bias = self.bias(pair_types).sum(dim=-2)
        x = (mul * distance.unsqueeze(-1) + bias).float()
        mean = self.means.weight.float().view(-1)
        inv_std = 1.0 / (self.stds.weight.float().view(-1).abs() + MIN_KERNEL_WIDTH)
        # N(x; mean, std) = exp(log(1 / (sqrt(2 pi) std)) - z^2 / 2), z = (x - mean) / std:
        # three passes over the [B, N, N, K] tensor instead of six (it dominates the
        # elementwise time of a pretraining step).
        z = torch.addcmul(-mean * inv_std, x, inv_std)
        log_density = torch.addcmul(torch.log(inv_std / math.sqrt(2 * math.pi)), z, z, value=-0.5)
        return torch.exp(log_density).type_as(self.means.weight)


class NonLinear(nn.Module):
    def __init__(self, input_dim: int, output_dim: int, hidden_dim: int = None):
        super().__init__()
        hidden_dim = hidden_dim or input_dim
        self.layer1 = nn.Linear(input_dim, hidden_dim)
        self.layer2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        return self.layer2(F.gelu(self.layer1(x)))


@dataclass
class DistanceEncoding:
    bias: torch.Tensor  # [B, H, N, N] per-head attention bias
    kernels: torch.Tensor  # [B, N, N, K] Gaussian features (padded pairs not zeroed)
    directions: Optional[torch.Tensor]  # [B, N, N, 3] unit vectors pos_j - pos_i; None from distances alone


class GaussianDistanceBias(nn.Module):
    def __init__(self, num_heads: int, embed_dim: int, num_kernels: int = 128):
        super().__init__()
        self.gbf = GaussianLayer(num_kernels)
        self.gbf_proj = NonLinear(num_kernels, num_heads)
        self.edge_proj = nn.Linear(num_kernels, embed_dim)

    def forward(self, coordinates: torch.Tensor, pair_types: torch.Tensor, pair_mask: torch.Tensor) -> DistanceEncoding:
        delta = coordinates.unsqueeze(1) - coordinates.unsqueeze(2)  # [b, i, j] = pos_j - pos_i
        distance = delta.norm(dim=-1)
        # Padded pairs are not masked here: their bias is -inf (keys) or unused (queries),
        # and atom_features weights partners with pair weights that are 0 on padding.
        kernels = self.gbf(distance, pair_types)
        bias = self.gbf_proj(kernels).permute(0, 3, 1, 2)
        directions = delta / (distance.unsqueeze(-1) + DIRECTION_EPS)
        return DistanceEncoding(bias=bias, kernels=kernels, directions=directions)

    def encode_distances(self, distance: torch.Tensor, pair_types: torch.Tensor) -> DistanceEncoding:
        """The same encoding from a [B, N, N] distance matrix, e.g. distances predicted from
        the 2D graph, which have no directions."""
        kernels = self.gbf(distance, pair_types)
        bias = self.gbf_proj(kernels).permute(0, 3, 1, 2)
        return DistanceEncoding(bias=bias, kernels=kernels, directions=None)

    def atom_features(self, kernels: torch.Tensor, pair_weight: torch.Tensor) -> torch.Tensor:
        """Each atom's kernel features summed over its partners, weighted by pair_weight
        ([B, N, N], 0 on padding) -> [B, N, D]."""
        summed = pair_weight.to(kernels.dtype).unsqueeze(-2) @ kernels  # [B, N, 1, K]
        return self.edge_proj(summed.squeeze(-2))
