"""The Triton kernels: one chunk of P with its x log x epilogue, and a scaled matrix product; their tile
shapes on GPUs (autotuned; the interpreter's fixed tiles are `joint.INTERPRETER_TILES`).

Both share their tile product (`_tile_product`) and tile order (`_grouped_tile`), inlined by Triton; only
their epilogues differ. The host side that launches them is `music_ssl.triton_kernel.joint`.
"""

from __future__ import annotations

from music_ssl.triton_kernel.availability import interpreted, jit, tl, too_old, triton

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages). Compiled offline for sm_90 (python -m
# benchmarks.gpu_check --compile-only): with TF32 products every kernel lowers to wgmma without register
# spills; float32 operands use up to 192 KiB of shared memory (128 x 128 x 64, 3 stages). 4-warp
# 128 x 128 and 128 x 256 tiles spilled in the epilogue and were left out. With tf32x3 products (torch's
# "highest") two of them spill and are not tried (`SPILL_WITH_TF32X3`).
GPU_CONFIGS = (
    (128, 128, 32, 8, 3),
    (128, 128, 64, 8, 3),
    (64, 256, 32, 8, 3),
    (128, 64, 32, 4, 4),
)
# Tiles of programs launched together along M share strips of both operands in L2.
GPU_GROUP_M = 8
# tf32x3 products hold two parts of every operand: these tiles spilled registers in its compile for sm_90.
SPILL_WITH_TF32X3 = ((128, 128, 64, 8, 3), (64, 256, 32, 8, 3))


def config_tuple(config) -> tuple[int, ...]:
    """A triton.Config as its row of GPU_CONFIGS: (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages)."""
    kwargs = config.kwargs
    return (kwargs["BLOCK_M"], kwargs["BLOCK_N"], kwargs["BLOCK_K"], config.num_warps, config.num_stages)


def prune_for_precision(configs, named_args, **kwargs):
    """The configs autotuning tries for a launch: without those that spill in its precision."""
    if kwargs.get("INPUT_PRECISION") != "tf32x3":
        return configs
    return [config for config in configs if config_tuple(config) not in SPILL_WITH_TF32X3]


def autotuned(**options):
    """triton.autotune over GPU_CONFIGS for compiled kernels; interpreted kernels get the fixed
    interpreter blocks at launch (`music_ssl.triton_kernel.joint`)."""

    def wrap(kernel):
        if triton is None or interpreted(kernel) or too_old():
            return kernel  # Interpreted, or a triton too old to run it (see unavailable_reason).
        configs = [
            triton.Config(
                {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": GPU_GROUP_M},
                num_warps=warps,
                num_stages=stages,
            )
            for m, n, k, warps, stages in GPU_CONFIGS
        ]
        return triton.autotune(
            configs, prune_configs_by={"early_config_prune": prune_for_precision}, **options
        )(kernel)

    return wrap


@jit
def _grouped_tile(num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) of this program: grouped order, so programs running together share strips of both
    operands in L2."""
    pid = tl.program_id(0)
    pids_per_group = GROUP_M * num_pid_n
    first_pid_m = (pid // pids_per_group) * GROUP_M
    group_rows = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
    return first_pid_m + (pid % pids_per_group) % group_rows, (pid % pids_per_group) // group_rows


@jit
def _round_to_tf32(x):
    """x (float32) rounded to the nearest TF32 value, ties away from zero: 2**12 added to the bits, the 13
    low mantissa bits cleared (`music_ssl.triton_kernel.joint.to_tf32_`)."""
    bits = x.to(tl.int32, bitcast=True)
    return ((bits + 4096) & -8192).to(tl.float32, bitcast=True)


@jit
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
        acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
    return acc


# Autotuning reruns a launch: the partial sums must start from zero again.
# Keyed on everything that changes the compiled kernel or its best tiles: TF32 and IEEE products differ in
# instructions, registers and shared memory, so one's tiles are no choice for the other.
@autotuned(key=["n_rows", "dim", "WRITE_GRAD", "INPUT_PRECISION"], reset_to_zero=["partial_ptr"])
@jit
def joint_chunk_kernel(
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
        if INPUT_PRECISION == "tf32":  # an operand of the gradient products: rounded, not truncated
            grad = _round_to_tf32(grad)
        chunk_rows = rows - row_start
        tl.store(
            grad_ptr + chunk_rows[:, None] * stride_gm + cols[None, :] * stride_gd,
            grad.to(grad_ptr.dtype.element_ty),
            mask=valid,
        )


# Autotuning reruns a launch: the accumulated gradient must be restored.
@autotuned(key=["M", "N", "K", "ACCUMULATE", "INPUT_PRECISION"], restore_value=["c_ptr"])
@jit
def scaled_matmul_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    k_piece,
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
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """c (M x N) = alpha * a @ b, or c += alpha * a @ b with ACCUMULATE; any strides (transposes: views).

    Split K: program (pid, s) reduces over k in [s * k_piece, (s + 1) * k_piece) into c + s * stride_cs."""
    pid_m, pid_n = _grouped_tile(tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < M
    col_ok = cols < N
    k_start = tl.program_id(1) * k_piece
    acc = _tile_product(
        a_ptr,
        b_ptr,
        rows,
        cols,
        k_start,
        tl.minimum(K, k_start + k_piece),
        k_piece,
        stride_am,
        stride_ak,
        stride_bk,
        stride_bn,
        row_ok,
        col_ok,
        INPUT_PRECISION,
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
