"""3D relation encoder: Gaussian basis kernels of interatomic distances.

psi_k(d_ij) = N(a_{t_i t_j} d_ij + c_{t_i t_j}; mu_k, sigma_k), K kernels, with the affine
(a, c) learned per pair of atom types; an MLP maps the kernels to per-head biases and a
linear map turns each atom's summed kernels into an atom-level 3D feature. Names and
shapes follow Transformer-M (`gbf.{means,stds,mul,bias}`, `gbf_proj`, `edge_proj`).
"""
import functools
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import vocabulary as vocab
from .native import gaussian_kernels as fused_kernels
from ..cpu_autocast import autocast_dtype

# sigma = |std| + this, so that no kernel collapses to a delta.
MIN_KERNEL_WIDTH = 0.01
# Unit pair vectors divide by (distance + this) so coincident atoms give a zero vector.
DIRECTION_EPS = 1e-5
# Kernel values below fp32's smallest normal number are set to 0: far-off kernels of
# narrow width underflow into subnormals, and x86 CPUs run every product and sum that
# reads a subnormal many times slower (a fifth of a pretraining step). The change is
# below 1.2e-38 per kernel.
LOG_SMALLEST_NORMAL = math.log(torch.finfo(torch.float32).tiny)


def _density_of_log(log_density: torch.Tensor) -> torch.Tensor:
    """exp, in place, of a log density; 0 where the density would be subnormal."""
    return F.threshold_(log_density, LOG_SMALLEST_NORMAL, -math.inf).exp_()


# Pairs per block of `_KernelBiasAndAtomSums`: a block's [pairs, K] tensors (1 to 2 MB at
# K = 128) stay in a core's cache across the block's dozen passes.
PAIRS_PER_BLOCK = 2048


class _KernelBiasAndAtomSums(torch.autograd.Function):
    """The Gaussian kernels psi[b, i, j, k] = N(x_bij; mean_k, sigma_k) taken through the
    MLP to per-head biases, bias = W2 gelu(W1 psi + b1) + b2, and each atom's kernels
    summed over its partners, S[b, i, k] = sum_j w_bij psi_bij,k, computed block by block
    of pairs, forward and backward, with the backward written out.

    The [B, N, N, K] kernels and hidden activations are never stored: each block's are
    recomputed in the backward from the pairs' x alone. Made whole, they were the largest
    tensors of a step and their dozen passes through memory a third of its time. The
    kernels and their backward are `_FusedKernels` (one C pass each) on CPUs that can
    build them, `_EagerKernels` where they cannot be built. Under CPU autocast the MLP's products run in
    bf16 in both directions, as nn.Linear's do; the kernels, their sums and every other
    gradient stay fp32.
    """

    @staticmethod
    def forward(ctx, x, mean, inv_std, pair_weight, w1, b1, w2, b2):
        # the MLP's precision: autocast's where it is on (CPU bf16), else its weights'
        # (bf16 where fairseq's --bf16 casts the model)
        device = x.device.type
        ctx.dtype = autocast_dtype(device) or w1.dtype
        ctx.save_for_backward(x, mean, inv_std, pair_weight, w1, b1, w2)
        batch, n = x.shape[:2]
        block_kernels = _block_kernels(x, mean, inv_std, pair_weight, ctx.dtype)
        bias = x.new_empty(batch * n, n, w2.shape[0], dtype=ctx.dtype)
        sums = x.new_empty(batch * n, mean.shape[0])
        w1, b1, w2, b2 = (p.to(ctx.dtype) for p in (w1, b1, w2, b2))
        with torch.autocast(device, enabled=False):
            for block in _blocks(x):
                psi, sums[block] = block_kernels.forward(block, with_sums=True)
                bias[block] = F.linear(F.gelu(F.linear(psi, w1, b1)), w2, b2)
        return bias.view(batch, n, n, w2.shape[0]), sums.view(batch, n, mean.shape[0])

    @staticmethod
    def backward(ctx, grad_bias, grad_sums):
        x, mean, inv_std, pair_weight, *weights = ctx.saved_tensors
        w1, b1, w2 = (p.to(ctx.dtype) for p in weights)
        batch, n = x.shape[:2]
        heads, num_kernels = w2.shape[0], mean.shape[0]
        # (autograd hands in zeros for an output without gradient: neither is None)
        # reshaped once: the bias's gradient arrives through a permute, not contiguous
        grad_bias = grad_bias.reshape(batch * n, n, heads)
        grad_sums = grad_sums.reshape(batch * n, num_kernels).contiguous()
        block_kernels = _block_kernels(x, mean, inv_std, pair_weight, ctx.dtype)
        grad_w1, grad_b1, grad_w2 = (torch.zeros_like(p) for p in weights)
        grad_b2 = torch.zeros(w2.shape[0], dtype=grad_w2.dtype, device=x.device)
        for block in _blocks(x):
            psi, _ = block_kernels.forward(block, with_sums=False)
            hidden = F.linear(psi, w1, b1)
            grad_out = grad_bias[block].to(ctx.dtype)
            grad_w2 += _outer_sum(grad_out, F.gelu(hidden))
            grad_b2 += grad_out.sum((0, 1), dtype=grad_b2.dtype)
            grad_hidden = torch.ops.aten.gelu_backward(grad_out @ w2, hidden)
            grad_w1 += _outer_sum(grad_hidden, psi)
            grad_b1 += grad_hidden.sum((0, 1), dtype=grad_b1.dtype)
            block_kernels.backward(block, grad_hidden @ w1, grad_sums[block])
        grad_x, grad_mean, grad_inv_std = block_kernels.gradients()
        return (grad_x, grad_mean, grad_inv_std, None, grad_w1, grad_b1, grad_w2, grad_b2)


def _block_kernels(x, mean, inv_std, pair_weight, dtype):
    kind = _FusedKernels if fused_kernels.available(x, dtype) else _EagerKernels
    return kind(x, mean, inv_std, pair_weight, dtype)


class _BlockKernels:
    """The kernels of blocks of atom rows and their backward; what the two forms share.

    With T = (dL/dpsi + w dL/dS) psi, z = (x - mean) / sigma and U = T z:
    dL/dx = -sum_k U inv_sigma, dL/dmean = inv_sigma sum U, dL/dinv_sigma = (sum T - sum U z) / inv_sigma.
    A form implements `forward(block, with_sums)` -> (psi [rows, n, K] in the MLP's dtype,
    the rows' weighted sums over their pairs [rows, K] in fp32 or None), `backward(block,
    grad_psi, grad_sums)`, which writes the block's rows of `grad_x`, and `pair_sums()`,
    the sums of T, U and U z over every pair [K] each.
    """

    def __init__(self, x, mean, inv_std, pair_weight, dtype):
        batch, n = x.shape[:2]
        self.x_shape, self.dtype = x.shape, dtype
        self.x_rows, self.weight_rows = x.reshape(batch * n, n), pair_weight.reshape(batch * n, n)
        self.mean, self.inv_std = mean, inv_std

    @functools.cached_property
    def grad_x(self):
        """dL/dx by atom row [B * N, N], made on the first backward (forward has no use for it)."""
        return self.x_rows.new_zeros(self.x_rows.shape)

    def gradients(self):
        """dL/dx [B, N, N], dL/dmean and dL/dinv_sigma [K], once every block's backward ran."""
        sum_t, sum_u, sum_uz = self.pair_sums()
        return self.grad_x.view(self.x_shape), self.inv_std * sum_u, (sum_t - sum_uz) / self.inv_std


class _EagerKernels(_BlockKernels):
    """Through PyTorch operators. `backward(block, ...)` follows `forward(block, ...)` of the
    same block, whose z and psi it uses."""

    def __init__(self, x, mean, inv_std, pair_weight, dtype):
        super().__init__(x, mean, inv_std, pair_weight, dtype)
        self.sums = torch.zeros(3, mean.shape[0], dtype=mean.dtype, device=mean.device)

    def forward(self, block, with_sums):
        self.z, self.psi = _kernels(self.x_rows[block], self.mean, self.inv_std)
        sums = (self.weight_rows[block].unsqueeze(-2) @ self.psi).squeeze(-2) if with_sums else None
        return self.psi.to(self.dtype), sums

    def backward(self, block, grad_psi, grad_sums):
        t = grad_psi.float().addcmul_(self.weight_rows[block].unsqueeze(-1), grad_sums.unsqueeze(-2))
        t.mul_(self.psi)
        u = t * self.z
        self.grad_x[block] = -(u @ self.inv_std)
        self.sums[0] += t.sum((0, 1))
        self.sums[1] += u.sum((0, 1))
        self.sums[2] += u.mul_(self.z).sum((0, 1))

    def pair_sums(self):
        return self.sums


class _FusedKernels(_BlockKernels):
    """In one C pass per block and direction (fp32 or bf16 kernels on CPUs): the dozen
    elementwise passes of the PyTorch form, each through memory, were most of the 3D
    bias's time."""

    def __init__(self, x, mean, inv_std, pair_weight, dtype):
        super().__init__(x, mean, inv_std, pair_weight, dtype)
        self.weight_rows = self.weight_rows.contiguous()
        self.log_norm = _log_normalizers(inv_std)

    @functools.cached_property
    def sums(self):
        return fused_kernels.new_pair_sums(self.mean.shape[0])

    def forward(self, block, with_sums):
        return fused_kernels.kernels(self.x_rows[block], self.weight_rows[block], self.mean, self.inv_std,
                                     self.log_norm, self.dtype, with_sums)

    def backward(self, block, grad_psi, grad_sums):
        fused_kernels.backward(self.x_rows[block], self.weight_rows[block], self.mean, self.inv_std,
                               self.log_norm, grad_psi.contiguous(), grad_sums, self.grad_x[block], self.sums)

    def pair_sums(self):
        return self.sums.sum(0).float()  # the threads' float64 sums, in thread order


def _blocks(x: torch.Tensor):
    """Slices of the batch * n atoms of x [B, N, N] (each with its n partners), about
    PAIRS_PER_BLOCK pairs each."""
    batch, n = x.shape[:2]
    rows = max(1, PAIRS_PER_BLOCK // max(n, 1))
    return [slice(start, start + rows) for start in range(0, batch * n, rows)]


def _z_and_log_density(x: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor):
    """z = (x - mean) / sigma and log N(x; mean, sigma), [..., K], in fp32."""
    z = torch.addcmul(-mean * inv_std, x.unsqueeze(-1), inv_std)
    return z, torch.addcmul(_log_normalizers(inv_std), z, z, value=-0.5)


def _log_normalizers(inv_std: torch.Tensor) -> torch.Tensor:
    """log(1 / (sigma sqrt(2 pi))) per kernel, [K]."""
    return torch.log(inv_std / math.sqrt(2 * math.pi))


def _kernels(x: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor):
    """z and the kernels N(x; mean, sigma), [..., K], in fp32, the log density's memory reused."""
    z, log_density = _z_and_log_density(x, mean, inv_std)
    return z, _density_of_log(log_density)


def _outer_sum(grad: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """A linear layer's weight gradient, sum over pairs of grad (x) inputs, [out, in], in fp32."""
    return (grad.reshape(-1, grad.shape[-1]).t() @ inputs.reshape(-1, inputs.shape[-1])).float()


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

    def affine_and_widths(self, distance, pair_types):
        """The kernels' argument x = a_{t_i t_j} d_ij + c_{t_i t_j} [B, N, N], their means
        and inverse widths [K], in fp32. a and c are the sums of the pair's two rows of `mul`
        and `bias`, read by indexing: nn.Embedding's backward over B x N x N x 2 rows of one
        value each took 5 times longer than the index's. The padding row gets no gradient,
        as with the embedding's padding_idx."""
        mul, bias = (_rows_without_padding_gradient(table)[pair_types].sum(dim=-1) for table in (self.mul, self.bias))
        return self._widths(mul * distance + bias)

    def affine_and_widths_reference(self, distance, pair_types):
        """`affine_and_widths` through nn.Embedding, as Transformer-M computes it."""
        mul = self.mul(pair_types).sum(dim=-2)
        bias = self.bias(pair_types).sum(dim=-2)
        return self._widths((mul * distance.unsqueeze(-1) + bias).squeeze(-1))

    def _widths(self, x):
        inv_std = 1.0 / (self.stds.weight.float().view(-1).abs() + MIN_KERNEL_WIDTH)
        return x.float(), self.means.weight.float().view(-1), inv_std

    def forward(self, distance: torch.Tensor, pair_types: torch.Tensor) -> torch.Tensor:
        """distance [B, N, N], pair_types [B, N, N, 2] -> kernels [B, N, N, K], whole and
        through autograd (the reference for `_KernelBiasAndAtomSums`)."""
        _, log_density = _z_and_log_density(*self.affine_and_widths_reference(distance, pair_types))
        # out of place, for autograd's generic backward
        density = torch.exp(log_density.masked_fill(log_density <= LOG_SMALLEST_NORMAL, -math.inf))
        return density.type_as(self.means.weight)


def _rows_without_padding_gradient(table: nn.Embedding) -> torch.Tensor:
    """The values of a [T, 1] embedding as a [T] vector whose padding entry is detached."""
    values = table.weight.view(-1)
    pad = table.padding_idx
    if pad is None:
        return values
    return torch.cat([values[:pad], values[pad:pad + 1].detach(), values[pad + 1:]])


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
        -inf (keys) or unused (queries), and their pair weight is 0.

        The block-wise form is for CPUs. On GPUs the whole-tensor form through autograd runs
        faster (fewer, larger kernels and nothing recomputed), at the memory of the
        [B, N, N, K] kernels it keeps (docs/pretraining.md, "On a GPU")."""
        if distance.device.type != "cpu":
            return self.encode_distances_reference(distance, pair_types, pair_weight)
        x, mean, inv_std = self.gbf.affine_and_widths(distance, pair_types)
        mlp = self.gbf_proj
        bias, atom_sums = _KernelBiasAndAtomSums.apply(
            x, mean, inv_std, pair_weight.to(x.dtype),
            mlp.layer1.weight, mlp.layer1.bias, mlp.layer2.weight, mlp.layer2.bias)
        return DistanceEncoding(bias=bias.permute(0, 3, 1, 2), directions=None,
                                atom_features=self.edge_proj(atom_sums.type_as(self.edge_proj.weight)))

    def encode_distances_reference(self, distance, pair_types, pair_weight) -> DistanceEncoding:
        """`encode_distances` with the kernels made whole and autograd's generic backward."""
        kernels = self.gbf(distance, pair_types)
        atom_sums = (pair_weight.to(kernels.dtype).unsqueeze(-2) @ kernels).squeeze(-2)
        return DistanceEncoding(bias=self.gbf_proj(kernels).permute(0, 3, 1, 2), directions=None,
                                atom_features=self.edge_proj(atom_sums))
