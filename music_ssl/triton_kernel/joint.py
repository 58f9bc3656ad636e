"""The host side of the Triton implementation: chunks of P launched as kernels, the gradient products,
precision.

Same contract as `music_ssl.chunked.chunked_joint_terms`. P = p_a^T p_b / N is produced a chunk of
rows at a time; three launches per chunk:

1. `joint_chunk_kernel`: every program computes one tile of the chunk of P with `tl.dot` over all N
   samples, then applies the epilogue in registers: x*log(x) with log(max(x, tiny)), the weights by
   position (diagonal entries of diagonal blocks -> diag sum, off-diagonal blocks -> off sum, the rest of
   a diagonal block -> nothing; block membership from global indices, i // C == j // C, so chunks and
   tiles need not line up with segments), and dL/dP = coef * (log P + 1). Its two partial sums go to a
   per-program slot of a small buffer, summed on the host afterwards (deterministic, no atomics); dL/dP
   is written for this chunk only.
2. `scaled_matmul_kernel` twice: dL/dp_a[:, chunk] = p_b dL/dP_chunk^T / N and
   dL/dp_b += p_a[:, chunk] dL/dP_chunk / N, for the local rows only. When the output has fewer tiles
   than the GPU has SMs (dL/dp_a at small N) the reduction is split and the partial products summed
   (`k_splits`).

Why chunks rather than recomputing P in the backward pass: an entry of P needs the full reduction over N
before its logarithm, so a recompute scheme pays a fourth N*D^2 product; the chunk keeps the cost at the
three products of the objective. Without gradients the whole of P is one chunk and only the partial sums
are written.

Memory, never D x D: the inputs copied once transposed, (D, N), so that both operands of the P tiles
are contiguous along the reduction (K-major, what tensor cores need): 2 N D. The dL/dP chunk:
chunk_rows x D with chunk_rows ~ N (512 to 4096). The gradients, the size of the local inputs: 2 N D;
split reductions, at most N D; with TF32 products, rounded copies of the local rows, 2 N D more. In all
5 to 9 N D floats.

Precision follows PyTorch's switch for float32 matrix products, `torch.get_float32_matmul_precision()`:
"highest" gives float32 accuracy (three TF32 tensor-core products of split operands, "tf32x3", on
GPUs with TF32 tensor cores; IEEE products elsewhere); "high" and "medium" allow TF32 tensor cores on
GPUs that have them, as for torch's own matmuls, with every operand rounded to the nearest TF32 value
first (the
tensor cores would truncate it: see `to_tf32_`): the probabilities as they are
copied, dL/dP as the chunk kernel writes it. Accumulation is float32 either way;
benchmarks/triton_accuracy.py measures both settings against float64 on a GPU. Under Triton's
interpreter (CPU tensors, used by the tests) products are IEEE.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import torch
from torch import Tensor

from music_ssl.triton_kernel import availability
from music_ssl.triton_kernel.kernels import (
    GPU_CONFIGS,
    config_tuple,
    joint_chunk_kernel,
    prune_for_precision,
    scaled_matmul_kernel,
)

# What only Triton's interpreter (CPU tensors, for tests) launches; nothing here changes what a GPU runs.
# tl.dot needs at least 16 per dimension; small tiles keep the interpreted tests fast.
INTERPRETER_BLOCK = 16
INTERPRETER_GROUP_M = 2
INTERPRETER_TILES = {"BLOCK_M": INTERPRETER_BLOCK, "BLOCK_N": INTERPRETER_BLOCK, "BLOCK_K": INTERPRETER_BLOCK}

# (target output tiles, smallest piece of the reduction, tile side) for `k_splits`: a GPU splits the
# reduction of products with fewer tiles than it has SMs; the interpreter, with 16 x 16 tiles, splits those
# with fewer than 8, so that the tests' small shapes exercise the split and the sum of partial products.
INTERPRETER_SPLIT_PLAN = (8, INTERPRETER_BLOCK, INTERPRETER_BLOCK)


# float32 values as TF32 tensor cores read them, and as the kernel rounds them first.
#
# A TF32 operand keeps float32's sign and 8-bit exponent and the top 10 of its 23 mantissa bits. The
# tensor-core instruction the kernel's `tl.dot(..., input_precision="tf32")` lowers to on Hopper (wgmma
# with .tf32 operands, fed straight from shared memory) reads a float32 operand by dropping the low 13
# bits: truncation, a bias of about -2^-11 relative on every product, which adds up in a sum of products
# instead of averaging out (about -7e-4 relative on P). torch's own TF32 matmuls round first. So does the
# kernel: every operand of its products is rounded to the nearest TF32 value (ties away from zero, as
# PTX's cvt.rna.tf32.f32) before it reaches the tensor cores, whose truncation then drops only zeros. A
# rounded operand errs by at most 2^-11 relative, without bias, and the errors of a sum of products
# average out (about 1e-6 relative on the loss's terms; `benchmarks/tf32_emulation.py`).
#
# The kernel does this in Triton (`kernels._round_to_tf32`, for dL/dP as it is written) and here, on the
# host (`to_tf32_`), for the probabilities it copies anyway.

# Half of the last kept mantissa bit, added before the 13 dropped bits are cleared: round to nearest.
HALF_ULP = 1 << 12
# Clears the 13 low mantissa bits (0xFFFFE000 as an int32).
KEEP = -(1 << 13)


def to_tf32_(x: Tensor, rounding: bool = True) -> Tensor:
    """``x`` (float32, finite), in place, as a TF32 operand carries it: rounded to the nearest TF32 value
    (ties away from zero), or with ``rounding=False`` truncated, as the tensor cores read an unrounded
    operand."""
    if x.dtype != torch.float32:
        raise TypeError(f"x must be float32, got {x.dtype}")
    bits = x.view(torch.int32)
    if rounding:
        bits.add_(HALF_ULP)
    bits.bitwise_and_(KEEP)
    return x


def default_chunk_rows(batch_size: int, dim: int) -> int:
    """Rows of P per chunk when gradients are computed.

    About N rows: the dL/dP chunk then weighs about as much as one input, and a chunk's products are large
    enough for full tensor-core speed. A multiple of 256 so GPU tiles do not straddle chunks."""
    rows = min(max(batch_size, 512), 4096)
    return min(dim, -(-rows // 256) * 256)


@functools.cache
def multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def gpu_split_plan(device: torch.device) -> tuple[int, int, int]:
    """(target output tiles, smallest piece of the reduction, tile side) for `k_splits` on a GPU: as many
    tiles as SMs, pieces of at least 512 (a multiple of every BLOCK_K), 128 x 128 tiles."""
    return multiprocessors(device), 512, 128


def k_splits(m: int, n: int, k: int, plan: tuple[int, int, int]) -> tuple[int, int]:
    """(splits, k_piece) so that a product with few output tiles still fills the GPU.

    dL/dp_a of a chunk is (local N) x (chunk rows) with a reduction over all D columns: at N = 256 that
    is 8 tiles of 128 x 128 for 132 SMs. Splitting the reduction into pieces and summing the partial
    products afterwards restores the parallelism. `plan` is `gpu_split_plan(device)`, or the
    interpreter's (`INTERPRETER_SPLIT_PLAN`)."""
    target, min_piece, tile = plan
    tiles = -(-m // tile) * -(-n // tile)
    splits = max(1, min(-(-target // tiles), k // min_piece, 16))
    piece = -(-k // splits)
    piece = -(-piece // min_piece) * min_piece
    return -(-k // piece), piece


# Pointer offsets are int32 in the kernels.
_MAX_ELEMENTS = 2**31 - 1


def has_tf32(device: torch.device) -> bool:
    return (
        device.type == "cuda" and not torch.version.hip and torch.cuda.get_device_capability(device)[0] >= 8
    )


def input_precision(tf32_hardware: bool, matmul_precision: str) -> str:
    """tl.dot's operand precision for float32 inputs, following torch's switch for its float32 matmuls.

    On GPUs with TF32 tensor cores, "high" and "medium" give TF32 products (operands rounded first) and
    "highest" gives "tf32x3": every operand split into two TF32 parts and three tensor-core products,
    float32's accuracy at tensor-core speed (IEEE products there run on FMA units, at 236 to 255 registers
    with spills). Elsewhere, and in Triton's interpreter, IEEE float32 products."""
    if not tf32_hardware:
        return "ieee"
    return "tf32" if matmul_precision in ("high", "medium") else "tf32x3"


def _operand(x: Tensor, rounded: bool) -> Tensor:
    """``x`` contiguous (a copy where it is not), rounded to TF32 in a copy of its own when the products
    take TF32 operands."""
    if not rounded:
        return x.contiguous()
    return to_tf32_(x.clone(memory_format=torch.contiguous_format))


def on_device(device: torch.device):
    """The context that makes ``device`` current for the launches: Triton launches on the current CUDA
    device, not on the tensors' (a tensor on cuda:1 while cuda:0 is current would be read from the wrong
    GPU)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


# Set by `compile_ahead`: the configs (`kernels.config_tuple`) whose launches are compiled instead of run;
# None (unset): launches run.
_COMPILING_ONLY: contextvars.ContextVar[frozenset[tuple[int, ...]] | None] = contextvars.ContextVar(
    "compiling_only", default=None
)


def _launch(kernel, interpret: bool, grid, *args, **meta) -> None:
    """grid(config) -> grid tuple; under the interpreter the config is the fixed small one."""
    only = _COMPILING_ONLY.get()
    if interpret:
        kernel[grid(INTERPRETER_TILES)](*args, **meta, **INTERPRETER_TILES, GROUP_M=INTERPRETER_GROUP_M)
    elif only is not None:
        # What autotuning would try for this launch, compiled with the launch's own arguments (so with its
        # specialization: Triton's cache key), none of them run.
        named = dict(zip(kernel.arg_names, args, strict=False))  # the constexprs come as keywords
        for config in prune_for_precision(kernel.configs, named, **meta):
            if config_tuple(config) in only:
                kernel.fn.warmup(*args, grid=(1,), **meta, **config.all_kwargs())
    else:
        kernel[grid](*args, **meta)


def compile_ahead(
    batch_size: int,
    dim: int,
    segment_dim: int,
    compute_grad: bool = True,
    device: torch.device | str = "cuda",
    configs: frozenset[tuple[int, ...]] | None = None,
) -> None:
    """Compiles every kernel that `triton_joint_terms` launches on (batch_size, dim) probabilities of one
    process, in the float32 product precision torch's switch selects now, for each config autotuning
    tries (or those of ``configs``, as `kernels.config_tuple` names them), into Triton's cache; nothing
    runs. The launches are the call's own, arguments and all, so a later call of that shape finds every
    kernel compiled: compiling in several processes at once (a config each, say) before anything is
    timed spares autotuning its compiles one after another."""
    if availability.interpreter_active():
        raise RuntimeError("compile_ahead compiles for the GPU; Triton's interpreter compiles nothing.")
    device = torch.device(device)
    p = torch.empty((batch_size, dim), device=device)
    token = _COMPILING_ONLY.set(frozenset(GPU_CONFIGS) if configs is None else configs)
    try:
        triton_joint_terms(p, p, (0, batch_size), segment_dim, 1.0, 1.0, 1.0, compute_grad)
    finally:
        _COMPILING_ONLY.reset(token)


def _matmul(interpret: bool, a: Tensor, b: Tensor, c: Tensor, alpha: float, accumulate: bool, **meta):
    """c = alpha * a @ b (c += with accumulate), with the reduction split when c has few tiles."""
    (m, k), n = a.shape, b.shape[1]
    splits, piece = k_splits(m, n, k, INTERPRETER_SPLIT_PLAN if interpret else gpu_split_plan(a.device))
    out = c if splits == 1 else c.new_empty((splits, m, n))
    out_strides = (0, *c.stride()) if splits == 1 else out.stride()
    _launch(
        scaled_matmul_kernel,
        interpret,
        lambda config: (-(-m // config["BLOCK_M"]) * -(-n // config["BLOCK_N"]), splits),
        a,
        b,
        out,
        m,
        n,
        k,
        piece,
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


def triton_joint_terms(
    p_a: Tensor,
    p_b: Tensor,
    local_rows: tuple[int, int],
    segment_dim: int,
    diag_coef: float,
    off_coef: float,
    grad_scale: float,
    compute_grad: bool,
    chunk_rows: int | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Sums of P log P over the diagonal entries of diagonal blocks and over off-diagonal blocks.

    Same arguments and returns as `music_ssl.chunked.chunked_joint_terms`, for float32
    probabilities; `chunk_rows` (rows of P per chunk when gradients are computed, default about N) may be
    any positive int: chunks need not align with segments or tiles.
    """
    if p_a.dtype != torch.float32 or p_b.dtype != torch.float32:
        raise TypeError(
            f"p_a and p_b must be float32 probabilities, got {p_a.dtype} and {p_b.dtype}; "
            "float64 inputs are computed by implementation='chunked'."
        )
    reason = availability.unavailable_reason(p_a.device)
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

    interpret = availability.interpreter_active()
    precision = input_precision(not interpret and has_tf32(p_a.device), torch.get_float32_matmul_precision())
    meta = {"INPUT_PRECISION": precision}

    # (D, N) copies: the P tiles reduce over samples, which must be the contiguous axis of both operands.
    # For TF32 products every operand is rounded to TF32 first, as torch's TF32 matmuls do (`tf32`).
    rounded = precision == "tf32"
    a_t = _operand(p_a.T, rounded)
    b_t = _operand(p_b.T, rounded)
    if compute_grad:
        rows_per_chunk = chunk_rows if chunk_rows is not None else default_chunk_rows(batch_size, dim)
        rows_per_chunk = max(1, min(rows_per_chunk, dim))
    else:
        rows_per_chunk = dim
    if rows_per_chunk * dim > _MAX_ELEMENTS:
        rows_per_chunk = max(1, _MAX_ELEMENTS // dim)
    num_chunks = -(-dim // rows_per_chunk)
    # One slot per program of the largest grid any config launches.
    min_m = INTERPRETER_BLOCK if interpret else min(config[0] for config in GPU_CONFIGS)
    min_n = INTERPRETER_BLOCK if interpret else min(config[1] for config in GPU_CONFIGS)
    slots = -(-rows_per_chunk // min_m) * -(-dim // min_n)
    partials = p_a.new_zeros((num_chunks, slots, 2))

    grad_a = grad_b = None
    grad_chunk = partials  # Placeholder pointer when no gradient is written.
    if compute_grad:
        grad_a = p_a.new_empty((local_count, dim))
        grad_b = p_b.new_empty((local_count, dim))
        grad_chunk = p_a.new_empty((rows_per_chunk, dim))
        local_a, local_b = (_operand(p[start:stop], rounded) for p in (p_a, p_b))
        scale = float(grad_scale) / batch_size

    with on_device(p_a.device):
        for chunk_index, first in enumerate(range(0, dim, rows_per_chunk)):
            last = min(first + rows_per_chunk, dim)
            rows = last - first
            _launch(
                joint_chunk_kernel,
                interpret,
                lambda config, rows=rows: (-(-rows // config["BLOCK_M"]) * -(-dim // config["BLOCK_N"]),),
                a_t,
                b_t,
                grad_chunk,
                partials[chunk_index],
                batch_size,
                dim,
                first,
                last,
                segment_dim,
                a_t.stride(0),
                a_t.stride(1),
                b_t.stride(0),
                b_t.stride(1),
                grad_chunk.stride(0),
                grad_chunk.stride(1),
                1.0 / batch_size,
                torch.finfo(torch.float32).tiny,
                float(diag_coef),
                float(off_coef),
                WRITE_GRAD=compute_grad,
                **meta,
            )
            if grad_a is None or grad_b is None or local_count == 0:  # no gradient wanted, or no local row
                continue
            chunk = grad_chunk[:rows]
            # dL/dp_a[:, chunk] = p_b dL/dP_chunk^T / N: a reduction over all columns of P.
            _matmul(interpret, local_b, chunk.T, grad_a[:, first:last], scale, False, **meta)
            # dL/dp_b += p_a[:, chunk] dL/dP_chunk / N: a reduction over the chunk's rows.
            _matmul(interpret, local_a[:, first:last], chunk, grad_b, scale, chunk_index > 0, **meta)
    sums = partials.sum(dim=(0, 1), dtype=torch.float64).to(p_a.dtype)
    return sums[0], sums[1], grad_a, grad_b
