"""The C kernels of the 3D bias (modules/native/gaussian_kernels.c) against the Gaussian
density and its gradients in float64, and their build: cache, switch, fallback."""
import logging
import math
import os

import pytest
import torch

from moleblend_plugin.modules import gaussian_distance_bias
from moleblend_plugin.modules.native import build as native_build
from moleblend_plugin.modules.native import gaussian_kernels as fused_kernels

pytestmark = pytest.mark.skipif(native_build.compiler() is None, reason="no C compiler to build the kernels with")


def _inputs(rows=7, n=9, k=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, n, generator=g) * 8 - 1
    weight = (torch.rand(rows, n, generator=g) > 0.3).float()
    mean = torch.rand(k, generator=g) * 3
    inv_std = 1 / (torch.rand(k, generator=g) * 3 + 0.01)  # widths 0.01 to 3, as the layer's
    return x, weight, mean, inv_std


def _density64(x, mean, inv_std):
    """psi [rows, n, K] in float64, 0 where fp32 would hold a subnormal."""
    z = (x.unsqueeze(-1) - mean) * inv_std
    log_density = torch.log(inv_std / math.sqrt(2 * math.pi)) - 0.5 * z * z
    return torch.where(log_density > gaussian_distance_bias.LOG_SMALLEST_NORMAL, log_density.exp(),
                       torch.zeros_like(log_density))


def _kernels(x, weight, mean, inv_std, dtype=torch.float32, with_sums=True):
    assert fused_kernels.available(x, dtype)
    return fused_kernels.kernels(x, weight, mean, inv_std, gaussian_distance_bias._log_normalizers(inv_std), dtype, with_sums)


def test_kernels_and_sums_match_the_density_in_float64():
    x, weight, mean, inv_std = _inputs()
    psi, sums = _kernels(x, weight, mean, inv_std)
    expected = _density64(x.double(), mean.double(), inv_std.double())
    assert torch.equal(psi == 0, expected == 0) and (psi > 0).float().mean() > 0.3
    # fp32 rounding of z (up to 800 / width) moves the log density by z dz: 1e-5 at most here
    torch.testing.assert_close(psi.double(), expected, rtol=2e-5, atol=0)
    torch.testing.assert_close(sums.double(), (weight.double().unsqueeze(-1) * expected).sum(1), rtol=2e-5, atol=1e-30)
    _, eager = gaussian_distance_bias._kernels(x, mean, inv_std)
    torch.testing.assert_close(eager.double(), expected, rtol=2e-5, atol=0)  # the PyTorch form, alike


def test_bf16_kernels_are_the_fp32_kernels_rounded_to_nearest_even():
    x, weight, mean, inv_std = _inputs(rows=128, n=64, k=128, seed=1)
    psi32, _ = _kernels(x, weight, mean, inv_std)
    psi16, none = _kernels(x, weight, mean, inv_std, torch.bfloat16, with_sums=False)
    assert none is None and psi16.dtype == torch.bfloat16
    # values halfway between two bf16 numbers, where rounding half up or half away would differ
    ties = ((psi32.view(torch.int32) & 0xFFFF) == 0x8000) & (psi32 != 0)
    assert ties.sum() >= 3
    assert torch.equal(psi16, psi32.to(torch.bfloat16))


def test_nan_arguments_stay_nan_and_infinite_ones_give_zero_as_in_the_pytorch_form():
    x, weight, mean, inv_std = _inputs(seed=6)
    x[0, 1], x[1, 2], x[2, 3] = float("nan"), float("inf"), -float("inf")
    psi, sums = _kernels(x, weight, mean, inv_std)
    _, eager = gaussian_distance_bias._kernels(x, mean, inv_std)
    assert torch.equal(psi.isnan(), eager.isnan()) and psi[0, 1].isnan().all()
    assert (psi[1, 2] == 0).all() and (psi[2, 3] == 0).all() and (eager[1, 2] == 0).all()
    assert sums[0].isnan().all() and sums[1:].isfinite().all()  # 0 x NaN is NaN, as in the PyTorch sum


def test_kernels_below_the_smallest_normal_float_are_zero():
    # the numbers of test_exact_rewrites' test of the PyTorch form: x = 0.1309 is 13.09
    # widths from a kernel of width 0.01 (density 2.4e-36), x = 0.136 is 13.6 (under 1.2e-38)
    x = torch.tensor([[0.1309, 0.136]])
    psi, _ = _kernels(x, torch.ones(1, 2), torch.tensor([0.0]), torch.tensor([100.0]))
    assert 0 < psi[0, 0, 0] < 1e-35 and psi[0, 1, 0] == 0


@pytest.mark.parametrize("grad_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_grad_sums", [True, False])
def test_backward_matches_autograd_of_the_density_in_float64(grad_dtype, with_grad_sums):
    x, weight, mean, inv_std = _inputs(seed=2)
    g = torch.Generator().manual_seed(3)
    grad_psi = torch.randn(*x.shape, mean.shape[0], generator=g).to(grad_dtype)
    grad_sums = torch.randn(x.shape[0], mean.shape[0], generator=g) if with_grad_sums else None

    grad_x, pair_sums = torch.empty_like(x), fused_kernels.new_pair_sums(mean.shape[0])
    fused_kernels.backward(x, weight, mean, inv_std, gaussian_distance_bias._log_normalizers(inv_std), grad_psi, grad_sums,
                           grad_x, pair_sums)
    sum_t, sum_u, sum_uz = pair_sums.sum(0)

    x64, mean64, inv_std64 = (t.double().requires_grad_() for t in (x, mean, inv_std))
    psi = _density64(x64, mean64, inv_std64)
    loss = (grad_psi.double() * psi).sum()
    if with_grad_sums:
        loss = loss + (grad_sums.double() * (weight.double().unsqueeze(-1) * psi).sum(1)).sum()
    loss.backward()
    torch.testing.assert_close(grad_x.double(), x64.grad, rtol=1e-4, atol=1e-4 * float(x64.grad.abs().max()))
    torch.testing.assert_close((inv_std * sum_u).double(), mean64.grad, rtol=1e-4, atol=1e-4 * float(mean64.grad.abs().max()))
    torch.testing.assert_close(((sum_t - sum_uz) / inv_std).double(), inv_std64.grad, rtol=1e-4,
                               atol=1e-4 * float(inv_std64.grad.abs().max()))


def test_backward_gives_the_same_bits_on_every_run():
    x, weight, mean, inv_std = _inputs(rows=31, seed=4)
    grad_psi = torch.randn(*x.shape, mean.shape[0], generator=torch.Generator().manual_seed(5))
    runs = []
    for _ in range(2):
        grad_x, pair_sums = torch.empty_like(x), fused_kernels.new_pair_sums(mean.shape[0])
        fused_kernels.backward(x, weight, mean, inv_std, gaussian_distance_bias._log_normalizers(inv_std), grad_psi, None,
                               grad_x, pair_sums)
        runs.append((grad_x, pair_sums.sum(0)))
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_strided_mistyped_or_misshapen_inputs_are_refused():
    x, weight, mean, inv_std = _inputs()
    log_norm = gaussian_distance_bias._log_normalizers(inv_std)
    with pytest.raises(ValueError, match="contiguous"):
        _kernels(x.t(), weight.t(), mean, inv_std)
    with pytest.raises(ValueError, match="weight"):
        fused_kernels.kernels(x, weight[:, :3].contiguous(), mean, inv_std, log_norm, torch.float32, True)
    with pytest.raises(ValueError, match="written in"):
        fused_kernels.kernels(x, weight, mean, inv_std, log_norm, torch.float16, True)

    def backward(grad_psi=None, grad_sums=None, pair_sums=None):
        fused_kernels.backward(x, weight, mean, inv_std, log_norm,
                               torch.zeros(*x.shape, mean.shape[0]) if grad_psi is None else grad_psi, grad_sums,
                               torch.empty_like(x), fused_kernels.new_pair_sums(mean.shape[0]) if pair_sums is None
                               else pair_sums)

    with pytest.raises(ValueError, match="grad_psi"):
        backward(grad_psi=torch.zeros(*x.shape, 3))
    with pytest.raises(ValueError, match="grad_sums"):
        backward(grad_sums=torch.zeros(x.shape[0], 3))
    with pytest.raises(ValueError, match="threads"):
        backward(pair_sums=torch.zeros(0, 3, mean.shape[0], dtype=torch.float64))
    with pytest.raises(ValueError, match="pair_sums"):
        backward(pair_sums=torch.zeros(torch.get_num_threads(), 3, mean.shape[0]))  # float32


@pytest.fixture
def fresh_build(monkeypatch, tmp_path):
    """Builds into an empty cache, as on a new machine; the process's library is kept aside."""
    monkeypatch.setenv("MOLEBLEND_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native_build, "_loaded", {})
    return tmp_path


def test_the_library_is_built_once_into_the_cache(fresh_build):
    assert native_build.load_library("gaussian_kernels.c") is not None
    built = os.listdir(fresh_build)
    assert len(built) == 1 and built[0].startswith("gaussian_kernels-") and built[0].endswith(".so")
    native_build._loaded.clear()
    mtime = os.path.getmtime(fresh_build / built[0])
    assert native_build.load_library("gaussian_kernels.c") is not None
    assert os.listdir(fresh_build) == built and os.path.getmtime(fresh_build / built[0]) == mtime


@pytest.mark.parametrize("off", ["0", "off", "False"])
def test_switched_off_or_unbuildable_kernels_leave_the_pytorch_form(fresh_build, monkeypatch, caplog, off):
    monkeypatch.setenv("MOLEBLEND_NATIVE", off)
    assert native_build.load_library("gaussian_kernels.c") is None
    assert not fused_kernels.available(torch.zeros(1), torch.float32)
    monkeypatch.delenv("MOLEBLEND_NATIVE")
    monkeypatch.setattr(native_build, "_loaded", {})
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    with caplog.at_level(logging.WARNING, logger=native_build.__name__):
        assert native_build.load_library("gaussian_kernels.c") is None
    assert "compiling gaussian_kernels.c failed" in caplog.text and "PyTorch form" in caplog.text
    assert os.listdir(fresh_build) == []  # nothing half-written left behind
