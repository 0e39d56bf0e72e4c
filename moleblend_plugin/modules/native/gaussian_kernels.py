"""The Gaussian kernels of a block of pairs and their backward, in one pass each
(gaussian_kernels.c), for `gaussian_distance_bias._KernelBiasAndAtomSums` on CPUs."""
import ctypes
from typing import Optional

import torch

from .build import load_library

_pointer, _size = ctypes.c_void_p, ctypes.c_int64
_ARGUMENTS = {
    # x, weight, rows, n, mean, inv_std, log_norm, k, psi32, psi16, sums, threads
    "gaussian_kernels_forward": [_pointer, _pointer, _size, _size, _pointer, _pointer, _pointer, _size,
                                 _pointer, _pointer, _pointer, ctypes.c_int],
    # x, weight, rows, n, mean, inv_std, log_norm, k, grad32, grad16, grad_sums, grad_x, acc, threads
    "gaussian_kernels_backward": [_pointer, _pointer, _size, _size, _pointer, _pointer, _pointer, _size,
                                  _pointer, _pointer, _pointer, _pointer, _pointer, ctypes.c_int],
}
KERNEL_DTYPES = (torch.float32, torch.bfloat16)
_typed_libraries = set()


def _library():
    library = load_library("gaussian_kernels.c")
    if library is not None and id(library) not in _typed_libraries:
        for name, arguments in _ARGUMENTS.items():
            getattr(library, name).argtypes = arguments
            getattr(library, name).restype = None
        _typed_libraries.add(id(library))
    return library


def available(x: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether the fused kernels serve pairs `x` with kernels of `dtype`."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and dtype in KERNEL_DTYPES and _library() is not None


def _address(t: Optional[torch.Tensor]):
    return None if t is None else t.data_ptr()


def _checked(name: str, t: torch.Tensor, dtype: torch.dtype, shape) -> torch.Tensor:
    """The C code reads and writes through raw pointers: anything but the exact layout is refused."""
    if t.device.type != "cpu" or t.dtype != dtype or not t.is_contiguous() or tuple(t.shape) != tuple(shape):
        raise ValueError(f"fused Gaussian kernels: {name} must be a contiguous {dtype} CPU tensor of shape "
                         f"{tuple(shape)}, got {'contiguous' if t.is_contiguous() else 'strided'} {t.dtype} "
                         f"{t.device.type} {tuple(t.shape)}")
    return t


def _check_pairs(x, weight, mean, inv_std, log_norm):
    rows, n = x.shape
    k = mean.shape[0]
    for name, t, shape in (("x", x, (rows, n)), ("weight", weight, (rows, n)), ("mean", mean, (k,)),
                           ("inv_std", inv_std, (k,)), ("log_norm", log_norm, (k,))):
        _checked(name, t, torch.float32, shape)
    if k == 0:
        raise ValueError("fused Gaussian kernels: no kernels (K = 0)")
    return rows, n, k


def kernels(x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor,
            log_norm: torch.Tensor, dtype: torch.dtype, with_sums: bool):
    """x, weight [rows, n] -> psi [rows, n, K] in `dtype` and, with `with_sums`, each row's
    weighted sums over its n pairs [rows, K] in fp32 (else None)."""
    if dtype not in KERNEL_DTYPES:
        raise ValueError(f"fused Gaussian kernels are written in {KERNEL_DTYPES}, not {dtype}")
    rows, n, k = _check_pairs(x, weight, mean, inv_std, log_norm)
    psi = torch.empty(rows, n, k, dtype=dtype, device="cpu")
    sums = torch.empty(rows, k, dtype=torch.float32, device="cpu") if with_sums else None
    _library().gaussian_kernels_forward(
        x.data_ptr(), weight.data_ptr(), rows, n, mean.data_ptr(), inv_std.data_ptr(), log_norm.data_ptr(), k,
        psi.data_ptr() if dtype == torch.float32 else None, psi.data_ptr() if dtype == torch.bfloat16 else None,
        _address(sums), torch.get_num_threads())
    return psi, sums


def new_pair_sums(k: int) -> torch.Tensor:
    """Zeroed accumulators for `backward`: one [3, K] per thread, in float64 (summed over
    every pair of a step); `.sum(0)` gives the sums of T, U and U z."""
    return torch.zeros(torch.get_num_threads(), 3, k, dtype=torch.float64, device="cpu")


def backward(x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor,
             log_norm: torch.Tensor, grad_psi: torch.Tensor, grad_sums: Optional[torch.Tensor],
             grad_x: torch.Tensor, pair_sums: torch.Tensor) -> None:
    """With T = (grad_psi + w grad_sums) psi and U = T z, writes dL/dx = -sum_k U inv_std into
    grad_x [rows, n] and adds the pair sums of T, U and U z to `pair_sums` (from
    `new_pair_sums`, made with the same thread count)."""
    rows, n, k = _check_pairs(x, weight, mean, inv_std, log_norm)
    if grad_psi.dtype not in KERNEL_DTYPES:
        raise ValueError(f"fused Gaussian kernels: grad_psi must be fp32 or bf16, got {grad_psi.dtype}")
    _checked("grad_psi", grad_psi, grad_psi.dtype, (rows, n, k))
    _checked("grad_x", grad_x, torch.float32, (rows, n))
    if grad_sums is not None:
        _checked("grad_sums", grad_sums, torch.float32, (rows, k))
    threads = torch.get_num_threads()
    if pair_sums.shape[0] < threads:
        raise ValueError(f"pair_sums holds {pair_sums.shape[0]} threads' sums, {threads} threads run")
    _checked("pair_sums", pair_sums, torch.float64, (pair_sums.shape[0], 3, k))
    _library().gaussian_kernels_backward(
        x.data_ptr(), weight.data_ptr(), rows, n, mean.data_ptr(), inv_std.data_ptr(), log_norm.data_ptr(), k,
        grad_psi.data_ptr() if grad_psi.dtype == torch.float32 else None,
        grad_psi.data_ptr() if grad_psi.dtype == torch.bfloat16 else None,
        _address(grad_sums), grad_x.data_ptr(), pair_sums.data_ptr(), threads)
