"""The joint-entropy terms of MUSIC as Triton kernels: the chunked path's bands, fused on the GPU.

Same contract as `music_ssl.chunked.chunked_joint_entropies`. P = p_a^T p_b / N is produced a band of
rows at a time; three kernels per band:

1. `_joint_band_kernel`: every program computes one tile of the band of P with `tl.dot` over all N
   samples, then applies the epilogue in registers: x*log(x) with log(max(x, tiny)), the weights by
   position (diagonal entries of diagonal blocks -> diag sum, off-diagonal blocks -> off sum, the rest of
   a diagonal block -> nothing; block membership from global indices, i // C == j // C, so bands and
   tiles need not line up with segments), and dL/dP = coef * (log P + 1). Its two partial sums go to a
   per-program slot of a small buffer, summed on the host afterwards (deterministic, no atomics); dL/dP
   is written for this band only.
2. `_scaled_matmul_kernel` twice: dL/dp_a[:, band] = p_b dL/dP_band^T / N and
   dL/dp_b += p_a[:, band] dL/dP_band / N, for the local rows only. When the output has fewer tiles
   than the GPU has SMs (dL/dp_a at small N) the reduction is split and the partial products summed.

Why bands rather than recomputing P in the backward pass: an entry of P needs the full reduction over N
before its logarithm, so a recompute scheme pays a fourth N*D^2 product; the band keeps the cost at the
three products of the spec. Without gradients the whole of P is one band and only the partial sums
are written.

Memory, never D x D: the inputs copied once transposed, (D, N), so that both operands of the P tiles
are contiguous along the reduction (K-major, what TF32 tensor cores need): 2 N D. The dL/dP band:
band_rows x D with band_rows ~ N (512 to 4096, `_default_band_rows`). The gradients, the size of the
local inputs: 2 N D; split reductions, at most N D. In all 5 to 7 N D floats (4 bytes each; 2 for the
copies with 16-bit operands).

Precision: accumulation is float32. On CUDA the products use TF32 tensor cores (`input_precision="tf32"`:
operands rounded to 10 mantissa bits). Emulating that rounding on CPU (N=2048, D=1024, C=32 and
D=960, C=80) gives relative errors of about 1e-6 on the loss terms and 5e-4 on the input gradients
against float64; benchmarks/gpu_check.py checks the GPU against 1e-4 (terms) and 2e-3 (gradients).
`input_precision="tf32x3"` or `"ieee"` buys float32 accuracy for about 3x the matmul time.
`operand_dtype=torch.bfloat16` (or float16) runs the products on 16-bit tensor cores (twice the TF32
rate, half the traffic) for inputs that were 16-bit anyway: about 5e-5 on the terms and 5e-3 on the
gradients (interpreter, N=37, D=96). Under Triton's interpreter (`TRITON_INTERPRET=1`, CPU tensors, used
by the tests) float32 products are exact (`"ieee"`) and agree with the reference to 1e-4 (about 1e-6
in practice). float64 inputs go to the chunked path: Triton's float64 dot is not worth a code path for
a verification dtype.

Availability: CUDA tensors with triton importable, or CPU tensors under the interpreter
(`TRITON_INTERPRET=1`, which must be set before triton is first imported: triton.language wraps its own
jitted helpers at import, and this module its kernels, which `music_ssl` imports only when the Triton
path is first asked for).

The two kernels share their tile product (`_tile_product`) and tile order (`_grouped_tile`), inlined by
Triton; only their epilogues differ.
"""

from __future__ import annotations

import functools
import itertools
import os

import torch
from torch import Tensor

from music_ssl.chunked import chunked_joint_entropies

try:
    import triton
    import triton.language as tl
except Exception as error:  # A broken install can raise more than ImportError (e.g. a missing libcuda).
    triton = None
    tl = None
    _IMPORT_ERROR = f"triton cannot be imported ({type(error).__name__}: {error})"
else:
    _IMPORT_ERROR = ""

# Operand precision of tl.dot on NVIDIA GPUs; see the module docstring.
CUDA_INPUT_PRECISION = "tf32"
# UPCAST (interpreter only): Triton 3.8's interpreter multiplies bfloat16 dot operands as raw bits; a
# float32 product of 16-bit values is exact, so upcasting first changes nothing but that.
# Block sizes under the interpreter: tl.dot needs >= 16 per dimension, and small tiles keep tests fast.
_INTERPRETER_BLOCK = 16
_INTERPRETER_GROUP = 2
# tl.dot's input_precision arrived in Triton 3.0 (torch >= 2.4); older releases cannot compile the kernels.
_MIN_TRITON = (3, 0)
# Pointer offsets are int32 in the kernels.
_MAX_ELEMENTS = 2**31 - 1


def _interpreter_flag() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on", "y")


def _release(version: str) -> tuple[int, ...]:
    """(3, 6) from "3.6.0", "3.6.0+git1234" or "3.6"."""
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


def _interpreted(function) -> bool:
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:
        return False
    return isinstance(function, InterpretedFunction)


def _jit(function):
    """triton.jit, which reads TRITON_INTERPRET now (at import); the plain function without triton."""
    return function if triton is None else triton.jit(function)


# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages). Compiled offline for sm_90 (python -m
# benchmarks.gpu_check --compile-only): every kernel lowers to wgmma without register spills; float32
# operands use up to 192 KiB of shared memory (128 x 128 x 64, 3 stages). 4-warp 128 x 128 and
# 128 x 256 tiles spilled in the epilogue and were left out.
GPU_CONFIGS = (
    (128, 128, 32, 8, 3),
    (128, 128, 64, 8, 3),
    (64, 256, 32, 8, 3),
    (128, 64, 32, 4, 4),
)


def _autotuned(**options):
    """triton.autotune over GPU_CONFIGS for compiled kernels; interpreted kernels get the fixed
    interpreter blocks at launch (`_launch`)."""

    def wrap(kernel):
        if triton is None or _interpreted(kernel) or _release(triton.__version__) < _MIN_TRITON:
            return kernel  # Interpreted, or a triton too old to run it (see unavailable_reason).
        configs = [
            triton.Config(
                {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": 8}, num_warps=warps, num_stages=stages
            )
            for m, n, k, warps, stages in GPU_CONFIGS
        ]
        return triton.autotune(configs, **options)(kernel)

    return wrap


@_jit
def _grouped_tile(num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) of this program: grouped order, so programs running together share strips of both
    operands in L2."""
    pid = tl.program_id(0)
    pids_per_group = GROUP_M * num_pid_n
    first_pid_m = (pid // pids_per_group) * GROUP_M
    group_rows = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
    return first_pid_m + (pid % pids_per_group) % group_rows, (pid % pids_per_group) // group_rows


@_jit
def _tile_product(
    a_ptr,
    b_ptr,
    rows,
    cols,
    k_start,
    k_stop,
    k_span,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    row_ok,
    col_ok,
    INPUT_PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """sum over k in [k_start, k_stop) of a[rows, k] b[k, cols], in float32; k_span >= k_stop - k_start
    is the loop length (a multiple of BLOCK_K keeps split reductions from overlapping)."""
    inner = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, k_span, BLOCK_K):
        kk = k_start + k + inner
        k_ok = kk < k_stop
        a = tl.load(
            a_ptr + rows[:, None] * stride_am + kk[None, :] * stride_ak,
            mask=row_ok[:, None] & k_ok[None, :],
            other=0.0,
        )
        b = tl.load(
            b_ptr + kk[:, None] * stride_bk + cols[None, :] * stride_bn,
            mask=k_ok[:, None] & col_ok[None, :],
            other=0.0,
        )
        if UPCAST:
            a, b = a.to(tl.float32), b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
    return acc


# Autotuning reruns a launch: the partial sums must start from zero again.
@_autotuned(key=["n_rows", "dim", "WRITE_GRAD"], reset_to_zero=["partial_ptr"])
@_jit
def _joint_band_kernel(
    a_ptr,
    b_ptr,
    grad_ptr,
    partial_ptr,
    n_rows,
    dim,
    row_start,
    row_stop,
    segment_dim,
    stride_ad,
    stride_an,
    stride_bd,
    stride_bn,
    stride_gm,
    stride_gd,
    inv_n,
    tiny,
    diag_coef,
    off_coef,
    WRITE_GRAD: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """One tile of rows [row_start, row_stop) of P = a b^T / N, a and b given as (D, N) with strides."""
    pid_m, pid_n = _grouped_tile(tl.cdiv(row_stop - row_start, BLOCK_M), tl.cdiv(dim, BLOCK_N), GROUP_M)
    rows = row_start + pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < row_stop
    col_ok = cols < dim
    acc = _tile_product(
        a_ptr,
        b_ptr,
        rows,
        cols,
        0,
        n_rows,
        n_rows,
        stride_ad,
        stride_an,
        stride_bn,
        stride_bd,
        row_ok,
        col_ok,
        INPUT_PRECISION,
        UPCAST,
        BLOCK_M,
        BLOCK_N,
        BLOCK_K,
    )

    joint = acc * inv_n
    log_joint = tl.log(tl.maximum(joint, tiny))
    xlogx = joint * log_joint
    valid = row_ok[:, None] & col_ok[None, :]
    same_segment = (rows[:, None] // segment_dim) == (cols[None, :] // segment_dim)
    on_diagonal = rows[:, None] == cols[None, :]
    diag_part = tl.sum(tl.sum(tl.where(valid & on_diagonal, xlogx, 0.0), axis=1), axis=0)
    off_part = tl.sum(tl.sum(tl.where(valid & (~same_segment), xlogx, 0.0), axis=1), axis=0)
    pid = tl.program_id(0)
    tl.store(partial_ptr + 2 * pid, diag_part)
    tl.store(partial_ptr + 2 * pid + 1, off_part)

    if WRITE_GRAD:
        coef = tl.where(on_diagonal, diag_coef, tl.where(same_segment, 0.0, off_coef))
        grad = coef * (log_joint + 1.0)
        band_rows = rows - row_start
        tl.store(
            grad_ptr + band_rows[:, None] * stride_gm + cols[None, :] * stride_gd,
            grad.to(grad_ptr.dtype.element_ty),
            mask=valid,
        )


# Autotuning reruns a launch: the accumulated gradient must be restored.
@_autotuned(key=["M", "N", "K", "ACCUMULATE"], restore_value=["c_ptr"])
@_jit
def _scaled_matmul_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    k_chunk,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cs,
    stride_cm,
    stride_cn,
    alpha,
    ACCUMULATE: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """c (M x N) = alpha * a @ b, or c += alpha * a @ b with ACCUMULATE; any strides (transposes: views).

    Split K: program (pid, s) reduces over k in [s * k_chunk, (s + 1) * k_chunk) into c + s * stride_cs."""
    pid_m, pid_n = _grouped_tile(tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < M
    col_ok = cols < N
    k_start = tl.program_id(1) * k_chunk
    acc = _tile_product(
        a_ptr,
        b_ptr,
        rows,
        cols,
        k_start,
        tl.minimum(K, k_start + k_chunk),
        k_chunk,
        stride_am,
        stride_ak,
        stride_bk,
        stride_bn,
        row_ok,
        col_ok,
        INPUT_PRECISION,
        UPCAST,
        BLOCK_M,
        BLOCK_N,
        BLOCK_K,
    )

    out = acc * alpha
    c_ptrs = c_ptr + tl.program_id(1) * stride_cs + rows[:, None] * stride_cm + cols[None, :] * stride_cn
    mask = row_ok[:, None] & col_ok[None, :]
    if ACCUMULATE:
        out += tl.load(c_ptrs, mask=mask, other=0.0)
    tl.store(c_ptrs, out, mask=mask)


def _language_interpreted() -> bool:
    """Whether triton.language was imported in interpreter mode: it wraps its own jitted helpers (tl.cdiv,
    tl.sum, ...) once, when triton is imported."""
    return _interpreted(tl.cdiv)


def interpreter_active() -> bool:
    """Whether kernels launch in Triton's interpreter (CPU tensors; for tests): TRITON_INTERPRET=1 was set
    when triton and this module were imported."""
    return triton is not None and _interpreted(_joint_band_kernel) and _language_interpreted()


def interpreter_defect(triton_version: str, numpy_version: str) -> str:
    """Why Triton's interpreter cannot run these kernels with these versions (empty when it can).

    Before Triton 3.7 the interpreter turned loop bounds into ints with int() on one-element arrays, which
    numpy 2.4 refuses: every kernel with a runtime loop bound fails (triton-lang/triton#9171, fixed in
    3.7)."""
    if _release(triton_version) < (3, 7) and _release(numpy_version) >= (2, 4):
        return (
            f"Triton {triton_version}'s interpreter cannot run kernels with loops under numpy "
            f"{numpy_version} (triton-lang/triton#9171); install triton >= 3.7 or numpy < 2.4."
        )
    return ""


def unavailable_reason(device: torch.device | str) -> str:
    """Why the Triton kernel cannot run on `device` (empty when it can)."""
    device = torch.device(device)
    if device.type not in ("cuda", "cpu"):
        return f"tensors are on {device.type}; the Triton kernel needs a CUDA device."
    if triton is None:
        return f"{_IMPORT_ERROR}; install triton (it ships with CUDA builds of torch)."
    if _release(triton.__version__) < _MIN_TRITON:
        return (
            f"triton {triton.__version__} is too old: the kernel needs triton >= 3.0 (tl.dot's "
            "input_precision; it ships with torch >= 2.4)."
        )
    if _interpreted(_joint_band_kernel) != _language_interpreted():
        return (
            "TRITON_INTERPRET changed between the import of triton and of music_ssl.triton_joint; set it "
            "(or not) before the first import of either."
        )
    if device.type == "cpu" and not interpreter_active():
        if _interpreter_flag():
            return (
                "tensors are on cpu and TRITON_INTERPRET=1 was set after triton was imported; set it "
                "before the first import of triton to run the kernel in Triton's interpreter."
            )
        return (
            "tensors are on cpu; Triton needs a CUDA device (or TRITON_INTERPRET=1, set before triton is "
            "imported, to run the kernel in Triton's interpreter, for testing)."
        )
    if interpreter_active():
        import numpy

        return interpreter_defect(triton.__version__, numpy.__version__)
    return ""


def is_available(device: torch.device | str) -> bool:
    """Whether the kernel can run on `device`: CUDA with triton importable, or CPU under the interpreter."""
    return not unavailable_reason(device)


def _has_tf32(device: torch.device) -> bool:
    return (
        device.type == "cuda" and not torch.version.hip and torch.cuda.get_device_capability(device)[0] >= 8
    )


def _default_band_rows(batch_size: int, dim: int) -> int:
    # About N rows: the dL/dP band then weighs about as much as one input, and a band's products are
    # large enough for full tensor-core speed. A multiple of 256 so GPU tiles do not straddle bands.
    rows = min(max(batch_size, 512), 4096)
    return min(dim, -(-rows // 256) * 256)


def _launch(kernel, interpret: bool, grid, *args, **meta) -> None:
    """grid(config) -> grid tuple; under the interpreter the config is the fixed small one."""
    if interpret:
        block = {"BLOCK_M": _INTERPRETER_BLOCK, "BLOCK_N": _INTERPRETER_BLOCK, "BLOCK_K": _INTERPRETER_BLOCK}
        kernel[grid(block)](*args, **meta, **block, GROUP_M=_INTERPRETER_GROUP)
    else:
        kernel[grid](*args, **meta)


@functools.cache
def _multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def _k_splits(m: int, n: int, k: int, interpret: bool, device: torch.device) -> tuple[int, int]:
    """(splits, k_chunk) so that a product with few output tiles still fills the GPU.

    dL/dp_a of a band is (local N) x (band rows) with a reduction over all D columns: at N = 256 that
    is 8 tiles of 128 x 128 for 132 SMs. Splitting the reduction into chunks of at least 512 (a multiple
    of every BLOCK_K) and summing the partial products afterwards restores the parallelism."""
    if interpret:
        target, min_chunk, tile = 8, _INTERPRETER_BLOCK, _INTERPRETER_BLOCK
    else:
        target, min_chunk, tile = _multiprocessors(device), 512, 128
    tiles = -(-m // tile) * -(-n // tile)
    splits = max(1, min(-(-target // tiles), k // min_chunk, 16))
    chunk = -(-k // splits)
    chunk = -(-chunk // min_chunk) * min_chunk
    return -(-k // chunk), chunk


def _matmul(kernel, interpret: bool, a: Tensor, b: Tensor, c: Tensor, alpha: float, accumulate: bool, **meta):
    """c = alpha * a @ b (c += with accumulate), with the reduction split when c has few tiles."""
    (m, k), n = a.shape, b.shape[1]
    splits, chunk = _k_splits(m, n, k, interpret, a.device)
    out = c if splits == 1 else c.new_empty((splits, m, n))
    out_strides = (0, *c.stride()) if splits == 1 else out.stride()
    _launch(
        kernel,
        interpret,
        lambda config: (-(-m // config["BLOCK_M"]) * -(-n // config["BLOCK_N"]), splits),
        a,
        b,
        out,
        m,
        n,
        k,
        chunk,
        *a.stride(),
        *b.stride(),
        *out_strides,
        alpha,
        ACCUMULATE=accumulate and splits == 1,
        **meta,
    )
    if splits > 1 and accumulate:
        c.add_(out.sum(dim=0))
    elif splits > 1:
        c.copy_(out.sum(dim=0))


def triton_joint_entropies(
    p_a: Tensor,
    p_b: Tensor,
    local_rows: tuple[int, int],
    segment_dim: int,
    diag_coef: float,
    off_coef: float,
    grad_scale: float,
    compute_grad: bool,
    band_rows: int | None = None,
    input_precision: str | None = None,
    operand_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Sums of P log P over the diagonal entries of diagonal blocks and over off-diagonal blocks.

    Same arguments and returns as `music_ssl.chunked.chunked_joint_entropies`, plus:

    Args:
        band_rows: Rows of P per band when gradients are computed; default about N (see the module
            docstring). Any positive int: bands need not align with segments or tiles.
        input_precision: Precision of float32 operands ("tf32", "tf32x3", "ieee"); default
            `CUDA_INPUT_PRECISION` on NVIDIA GPUs from Ampere on, "ieee" under the interpreter, on ROCm
            and on older GPUs.
        operand_dtype: torch.bfloat16 or torch.float16 to store the operands of the three products
            (p_a, p_b and dL/dP) in that dtype and run them on 16-bit tensor cores, still accumulating in
            float32: for inputs that were 16-bit to begin with. Anything else means float32 operands.
    """
    if p_a.dtype == torch.float64:
        return chunked_joint_entropies(
            p_a, p_b, local_rows, segment_dim, diag_coef, off_coef, grad_scale, compute_grad
        )
    if p_a.dtype != torch.float32:
        raise TypeError(f"p_a and p_b must be float32 probabilities (fused.py upcasts), got {p_a.dtype}.")
    reason = unavailable_reason(p_a.device)
    if reason:
        raise RuntimeError(f"The Triton joint kernel cannot run here: {reason}")
    batch_size, dim = p_a.shape
    start, stop = local_rows
    local_count = stop - start
    if p_a.numel() > _MAX_ELEMENTS:
        raise ValueError(
            f"p_a has {p_a.numel()} elements; the Triton kernel indexes with int32 (< 2**31). "
            "Use implementation='chunked'."
        )

    interpret = interpreter_active()
    if input_precision is None:
        input_precision = "ieee" if interpret or not _has_tf32(p_a.device) else CUDA_INPUT_PRECISION
    operands = operand_dtype if operand_dtype in (torch.float16, torch.bfloat16) else torch.float32

    # (D, N) copies: the P tiles reduce over samples, which must be the contiguous axis of both operands.
    a_t = p_a.new_empty((dim, batch_size), dtype=operands).copy_(p_a.T)
    b_t = p_b.new_empty((dim, batch_size), dtype=operands).copy_(p_b.T)
    if compute_grad:
        rows_per_band = band_rows if band_rows is not None else _default_band_rows(batch_size, dim)
        rows_per_band = max(1, min(rows_per_band, dim))
    else:
        rows_per_band = dim
    if rows_per_band * dim > _MAX_ELEMENTS:
        rows_per_band = max(1, _MAX_ELEMENTS // dim)
    num_bands = -(-dim // rows_per_band)
    # One slot per program of the largest grid any config launches.
    min_m = _INTERPRETER_BLOCK if interpret else min(config[0] for config in GPU_CONFIGS)
    min_n = _INTERPRETER_BLOCK if interpret else min(config[1] for config in GPU_CONFIGS)
    slots = -(-rows_per_band // min_m) * -(-dim // min_n)
    partials = p_a.new_zeros((num_bands, slots, 2))

    grad_a = grad_b = None
    grad_band = partials  # Placeholder pointer when no gradient is written.
    if compute_grad:
        grad_a = p_a.new_empty((local_count, dim))
        grad_b = p_b.new_empty((local_count, dim))
        grad_band = p_a.new_empty((rows_per_band, dim), dtype=operands)
        local_a, local_b = p_a[start:stop].to(operands), p_b[start:stop].to(operands)
        scale = float(grad_scale) / batch_size

    for band_index, first in enumerate(range(0, dim, rows_per_band)):
        last = min(first + rows_per_band, dim)
        rows = last - first
        _launch(
            _joint_band_kernel,
            interpret,
            lambda config, rows=rows: (-(-rows // config["BLOCK_M"]) * -(-dim // config["BLOCK_N"]),),
            a_t,
            b_t,
            grad_band,
            partials[band_index],
            batch_size,
            dim,
            first,
            last,
            segment_dim,
            a_t.stride(0),
            a_t.stride(1),
            b_t.stride(0),
            b_t.stride(1),
            grad_band.stride(0),
            grad_band.stride(1),
            1.0 / batch_size,
            torch.finfo(torch.float32).tiny,
            float(diag_coef),
            float(off_coef),
            WRITE_GRAD=compute_grad,
            INPUT_PRECISION=input_precision,
            UPCAST=interpret,
        )
        if not compute_grad or local_count == 0:
            continue
        band = grad_band[:rows]
        meta = {"INPUT_PRECISION": input_precision, "UPCAST": interpret}
        # dL/dp_a[:, band] = p_b dL/dP_band^T / N: a reduction over all columns of P.
        _matmul(
            _scaled_matmul_kernel, interpret, local_b, band.T, grad_a[:, first:last], scale, False, **meta
        )
        # dL/dp_b += p_a[:, band] dL/dP_band / N: a reduction over the band's rows.
        _matmul(
            _scaled_matmul_kernel,
            interpret,
            local_a[:, first:last],
            band,
            grad_b,
            scale,
            band_index > 0,
            **meta,
        )

    sums = partials.sum(dim=(0, 1), dtype=torch.float64).to(p_a.dtype)
    if compute_grad and local_count == 0:
        grad_a.zero_()
        grad_b.zero_()
    return sums[0], sums[1], grad_a, grad_b
