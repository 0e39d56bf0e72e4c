"""The Gaussian kernels of a block of pairs and their backward, in one pass each
(gaussian_kernels.c), for `gaussian_distance_bias._KernelBiasAndAtomSums` on CPUs."""
import ctypes
import math
from typing import Optional

import torch

from .build import load_library

_c_float_p = ctypes.c_void_p
_ARGUMENTS = {
    # x, weight, rows, n, mean, inv_std, log_norm, k, psi32, psi16, sums, threads
    "gaussian_kernels_forward": [_c_float_p, _c_float_p, ctypes.c_int64, ctypes.c_int64, _c_float_p, _c_float_p,
                                 _c_float_p, ctypes.c_int64, _c_float_p, _c_float_p, _c_float_p, ctypes.c_int],
    # x, weight, rows, n, mean, inv_std, log_norm, k, grad32, grad16, grad_sums, grad_x, acc, threads
    "gaussian_kernels_backward": [_c_float_p, _c_float_p, ctypes.c_int64, ctypes.c_int64, _c_float_p, _c_float_p,
                                  _c_float_p, ctypes.c_int64, _c_float_p, _c_float_p, _c_float_p, _c_float_p,
                                  _c_float_p, ctypes.c_int],
}
KERNEL_DTYPES = (torch.float32, torch.bfloat16)


def _library():
    library = load_library("gaussian_kernels.c")
    if library is not None and not getattr(library, "_typed", False):
        for name, arguments in _ARGUMENTS.items():
            getattr(library, name).argtypes = arguments
            getattr(library, name).restype = None
        library._typed = True
    return library


def available(x: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether the fused kernels serve pairs `x` with kernels of `dtype`."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and dtype in KERNEL_DTYPES and _library() is not None


def log_normalizers(inv_std: torch.Tensor) -> torch.Tensor:
    """log(1 / (sigma sqrt(2 pi))) per kernel, [K] fp32."""
    return torch.log(inv_std / math.sqrt(2 * math.pi)).contiguous()


def _pointer(t: Optional[torch.Tensor]):
    return None if t is None else t.data_ptr()


def _checked(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if t.dtype != dtype or not t.is_contiguous():
        raise ValueError(f"fused Gaussian kernels take contiguous {dtype} tensors, got {t.dtype} "
                         f"{'contiguous' if t.is_contiguous() else 'strided'} {tuple(t.shape)}")
    return t


def kernels(x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor,
            log_norm: torch.Tensor, dtype: torch.dtype, with_sums: bool):
    """x, weight [rows, n] -> psi [rows, n, K] in `dtype` and, with `with_sums`, each row's
    weighted sums over its n pairs [rows, K] in fp32 (else None)."""
    rows, n = x.shape
    k = mean.shape[0]
    psi = torch.empty(rows, n, k, dtype=dtype)
    sums = torch.empty(rows, k) if with_sums else None
    for t in (x, weight, mean, inv_std, log_norm):
        _checked(t, torch.float32)
    _library().gaussian_kernels_forward(
        x.data_ptr(), weight.data_ptr(), rows, n, mean.data_ptr(), inv_std.data_ptr(), log_norm.data_ptr(), k,
        psi.data_ptr() if dtype == torch.float32 else None, psi.data_ptr() if dtype == torch.bfloat16 else None,
        _pointer(sums), torch.get_num_threads())
    return psi, sums


def new_pair_sums(k: int) -> torch.Tensor:
    """Zeroed accumulators for `backward`: one [3, K] per thread."""
    return torch.zeros(torch.get_num_threads(), 3, k)


def backward(x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor,
             log_norm: torch.Tensor, grad_psi: torch.Tensor, grad_sums: Optional[torch.Tensor],
             grad_x: torch.Tensor, pair_sums: torch.Tensor) -> None:
    """With T = (grad_psi + w grad_sums) psi and U = T z, writes dL/dx = -sum_k U inv_std into
    grad_x [rows, n] and adds the pair sums of T, U and U z to `pair_sums` (from
    `new_pair_sums`, made with the same thread count)."""
    rows, n = x.shape
    k = mean.shape[0]
    for t in (x, weight, mean, inv_std, log_norm, grad_x, pair_sums):
        _checked(t, torch.float32)
    _checked(grad_psi, grad_psi.dtype)
    if grad_psi.dtype not in KERNEL_DTYPES or grad_psi.shape != (rows, n, k):
        raise ValueError(f"grad_psi must be fp32 or bf16 of shape {(rows, n, k)}, got {grad_psi.dtype} {tuple(grad_psi.shape)}")
    if pair_sums.shape[0] < torch.get_num_threads():
        raise ValueError(f"pair_sums holds {pair_sums.shape[0]} threads' sums, {torch.get_num_threads()} threads run")
    if grad_sums is not None:
        _checked(grad_sums, torch.float32)
    _library().gaussian_kernels_backward(
        x.data_ptr(), weight.data_ptr(), rows, n, mean.data_ptr(), inv_std.data_ptr(), log_norm.data_ptr(), k,
        grad_psi.data_ptr() if grad_psi.dtype == torch.float32 else None,
        grad_psi.data_ptr() if grad_psi.dtype == torch.bfloat16 else None,
        _pointer(grad_sums), grad_x.data_ptr(), pair_sums.data_ptr(), torch.get_num_threads())
