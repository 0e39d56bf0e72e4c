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


class _KernelsAndAtomSums(torch.autograd.Function):
    """psi[b, i, j, k] = N(x_bij; mean_k, sigma_k) and each atom's kernels summed over its
    partners, S[b, i, k] = sum_j w_bij psi_bij,k, with the backward written out.

    The [B, N, N, K] tensors dominate the elementwise time of a pretraining step; autograd's
    backward of the same expression makes about twice as many passes over them. With
    T = (dL/dpsi + w dL/dS) psi, z = (x - mean) / sigma and U = T z:
    dL/dx = -sum_k U inv_sigma, dL/dmean = inv_sigma sum U, dL/dinv_sigma = (sum T - sum U z) / inv_sigma.
    """

    @staticmethod
    def forward(ctx, x, mean, inv_std, pair_weight):
        # N(x; mean, std) = exp(log(1 / (sqrt(2 pi) std)) - z^2 / 2): three passes.
        z = torch.addcmul(-mean * inv_std, x, inv_std)
        psi = torch.addcmul(torch.log(inv_std / math.sqrt(2 * math.pi)), z, z, value=-0.5).exp_()
        sums = (pair_weight.unsqueeze(-2) @ psi).squeeze(-2)
        ctx.save_for_backward(x, mean, inv_std, psi, pair_weight)
        return psi, sums

    @staticmethod
    def backward(ctx, grad_psi, grad_sums):
        x, mean, inv_std, psi, pair_weight = ctx.saved_tensors
        if grad_psi is None:
            grad_psi = torch.zeros_like(psi)
        if grad_sums is not None:
            t = torch.addcmul(grad_psi, pair_weight.unsqueeze(-1), grad_sums.unsqueeze(2)).mul_(psi)
        else:
            t = grad_psi * psi
        z = torch.addcmul(-mean * inv_std, x, inv_std)
        u = t * z
        pairs = tuple(range(u.dim() - 1))
        grad_x = -(u @ inv_std).unsqueeze(-1)
        grad_mean = inv_std * u.sum(pairs)
        grad_inv_std = (t.sum(pairs) - u.mul_(z).sum(pairs)) / inv_std
        return grad_x, grad_mean, grad_inv_std, None


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

    def _affine_and_widths(self, distance, pair_types):
        mul = self.mul(pair_types).sum(dim=-2)
        bias = self.bias(pair_types).sum(dim=-2)
        x = (mul * distance.unsqueeze(-1) + bias).float()
        inv_std = 1.0 / (self.stds.weight.float().view(-1).abs() + MIN_KERNEL_WIDTH)
        return x, self.means.weight.float().view(-1), inv_std

    def forward(self, distance: torch.Tensor, pair_types: torch.Tensor) -> torch.Tensor:
        """distance [B, N, N], pair_types [B, N, N, 2] -> kernels [B, N, N, K], through
        autograd's generic backward (the reference for `kernels_and_atom_sums`)."""
        x, mean, inv_std = self._affine_and_widths(distance, pair_types)
        z = torch.addcmul(-mean * inv_std, x, inv_std)
        log_density = torch.addcmul(torch.log(inv_std / math.sqrt(2 * math.pi)), z, z, value=-0.5)
        return torch.exp(log_density).type_as(self.means.weight)

    def kernels_and_atom_sums(self, distance: torch.Tensor, pair_types: torch.Tensor, pair_weight: torch.Tensor):
        """The kernels [B, N, N, K] and each atom's kernels summed over partners with
        `pair_weight` [B, N, N] -> [B, N, K]; the same function as forward, faster."""
        x, mean, inv_std = self._affine_and_widths(distance, pair_types)
        psi, sums = _KernelsAndAtomSums.apply(x, mean, inv_std, pair_weight.to(x.dtype))
        return psi.type_as(self.means.weight), sums.type_as(self.means.weight)

    def kernels_and_atom_sums_reference(self, distance, pair_types, pair_weight):
        """`kernels_and_atom_sums` through autograd's generic backward."""
        kernels = self(distance, pair_types)
        return kernels, (pair_weight.to(kernels.dtype).unsqueeze(-2) @ kernels).squeeze(-2)


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
    atom_features: torch.Tensor  # [B, N, D] each atom's partner-summed kernels, projected
    directions: Optional[torch.Tensor]  # [B, N, N, 3] unit vectors pos_j - pos_i; None from distances alone


class GaussianDistanceBias(nn.Module):
    def __init__(self, num_heads: int, embed_dim: int, num_kernels: int = 128):
        super().__init__()
        self.gbf = GaussianLayer(num_kernels)
        self.gbf_proj = NonLinear(num_kernels, num_heads)
        self.edge_proj = nn.Linear(num_kernels, embed_dim)

    def forward(self, coordinates: torch.Tensor, pair_types: torch.Tensor, pair_weight: torch.Tensor) -> DistanceEncoding:
        """pair_weight [B, N, N] (0 on padding) weights each partner's kernels in an atom's
        3D feature."""
        delta = coordinates.unsqueeze(1) - coordinates.unsqueeze(2)  # [b, i, j] = pos_j - pos_i
        distance = delta.norm(dim=-1)
        encoded = self.encode_distances(distance, pair_types, pair_weight)
        encoded.directions = delta / (distance.unsqueeze(-1) + DIRECTION_EPS)
        return encoded

    def encode_distances(self, distance: torch.Tensor, pair_types: torch.Tensor,
                         pair_weight: torch.Tensor) -> DistanceEncoding:
        """The encoding of a [B, N, N] distance matrix (e.g. distances predicted from the 2D
        graph, which have no directions). Padded pairs are not masked here: their bias is
        -inf (keys) or unused (queries), and their pair weight is 0."""
        kernels, atom_sums = self.gbf.kernels_and_atom_sums(distance, pair_types, pair_weight)
        bias = self.gbf_proj(kernels).permute(0, 3, 1, 2)
        return DistanceEncoding(bias=bias, atom_features=self.edge_proj(atom_sums), directions=None)
